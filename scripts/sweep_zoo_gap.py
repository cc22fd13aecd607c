"""How the planted heads' attention score gap decides whether attribution methods see
the planted circuits. By hand: `.venv/bin/python scripts/sweep_zoo_gap.py [GAP ...]`
(default gaps 4 5 6 7 8 20).

For each gap, zoo model and ablation: the planted circuit's faithfulness and, for exact
patching, EAP and EAP-IG, the precision of the top-|C| edges against the planted
circuit (as tests/test_discovery.py, 48 examples, seed 1). The zoo uses 6 nats
(circuitlang/zoo/induction.py, mlp_planted.py); this is the measurement behind that.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = [  # (model, ablation, ground-truth circuit, generator, stdlib file)
    ("induction-2l", "zero", "induction", "induction", "stdlib/zoo/induction.circ"),
    ("induction-2l", "resample", "induction_resample", "induction", "stdlib/zoo/induction.circ"),
    ("mlp-planted", "zero", "planted", "mod_sum", "stdlib/zoo/mlp_planted.circ"),
    ("mlp-planted", "resample", "planted_resample", "mod_sum", "stdlib/zoo/mlp_planted.circ"),
]


def main(gaps: list[float]) -> None:
    import torch

    import circuitlang as cl
    from circuitlang.backend import LoadedModel
    from circuitlang.check import TaskSpec
    from circuitlang.discovery import eap_ig_scores, eap_scores, exact_scores, top_edges
    from circuitlang.evaluation import Evaluator, Session, task_data
    from circuitlang.models import KNOWN_SHAPES
    from circuitlang.zoo import induction, mlp_planted

    torch.set_num_threads(1)
    builders = {"induction-2l": induction.build, "mlp-planted": mlp_planted.build}
    methods = {"exact": exact_scores, "eap": eap_scores, "eap-ig": eap_ig_scores}
    print("| gap | model, ablation | f(planted) | " + " | ".join(methods) + " |")
    print("|---|---|---|" + "---|" * len(methods))
    for gap in gaps:
        for name, ablation, circuit, generator, path in CASES:
            loaded = LoadedModel(builders[name](score_gap=gap), f"zoo:{name}", KNOWN_SHAPES[f"zoo:{name}"])
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
