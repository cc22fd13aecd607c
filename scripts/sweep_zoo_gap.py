"""How the planted heads' attention score gap decides whether attribution methods see
the planted circuits. By hand: `.venv/bin/python scripts/sweep_zoo_gap.py [GAP ...]`
(default gaps 4 5 6 7 8 20).

For each gap, zoo model and ablation: the planted circuit's faithfulness and, for exact
patching, EAP and EAP-IG, the precision of the top-|C| edges against the planted
circuit (as tests/test_discovery.py, 48 examples, seed 1). The zoo uses 6 nats
(circuitlang/eval/zoo/induction.py, mlp_planted.py); this is the measurement behind that.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = [  # (model, ablation, ground-truth circuit, generator, stdlib file)
    ("induction-2l", "zero", "induction", "induction", "stdlib/zoo/induction.circ"),
    ("induction-2l", "resample", "induction_resample", "induction", "stdlib/zoo/induction.circ"),
    ("mlp-planted", "zero", "planted", "mod_sum", "stdlib/zoo/mlp_planted.circ"),
    ("mlp-planted", "resample", "planted_resample", "mod_sum", "stdlib/zoo/mlp_planted.circ"),
]


def main(gaps: list[float]) -> None:
    import torch

    import circuitlang as cl
    from circuitlang.discovery.methods.eap import eap_scores
    from circuitlang.discovery.methods.eap_ig import eap_ig_scores
    from circuitlang.discovery.methods.exact import exact_scores
    from circuitlang.discovery.select import top_edges
    from circuitlang.eval.evaluator import Evaluator
    from circuitlang.eval.loading import zoo_model
    from circuitlang.eval.session import Session
    from circuitlang.eval.tasks.registry import task_data
    from circuitlang.lang.check import TaskSpec

    torch.set_num_threads(1)
    methods = {"exact": exact_scores, "eap": eap_scores, "eap-ig": eap_ig_scores}
    print("| gap | model, ablation | f(planted) | " + " | ".join(methods) + " |")
    print("|---|---|---|" + "---|" * len(methods))
    for gap in gaps:
        for name, ablation, circuit, generator, path in CASES:
            loaded = zoo_model(name, score_gap=gap)
            data = task_data(TaskSpec("t", (generator, {"n": 48, "seed": 1})), loaded)
            evaluator = Evaluator(Session(loaded, data, ablation))
            truth = cl.load(ROOT / path).circuits[circuit]
            faith = float(evaluator.faithfulness([truth])[0])
            precision = []
            for method in methods.values():
                found = top_edges(method(evaluator.session, evaluator=evaluator), len(truth.edges))
                precision.append(f"{len(found.edges & truth.edges) / len(truth.edges):.2f}")
            print(f"| {gap:g} | {name}, {ablation} | {faith:.3f} | " + " | ".join(precision) + " |", flush=True)


if __name__ == "__main__":
    main([float(g) for g in sys.argv[1:]] or [4, 5, 6, 7, 8, 20])
