"""Benchmark of discovery (issue: circuit discovery). By hand: `.venv/bin/python bench/bench_discovery.py`.

On the GPT-2-shape zoo model (random weights), CPU, 8 prompts x 16 tokens, resample
ablation, logit difference, ratios measured in this run:

1. EAP and EAP-IG (5 steps) in plain forward-pass equivalents (target for EAP: <= 3).
2. Exact per-edge patching: a sample of edges, batched with the fast engine, against one
   engine call per edge; extrapolated to all 32,491 edges.
3. ACDC with batched candidates against the literal one-edge-per-pass ACDC, on the
   zoo's trained induction model (81 edges) — the GPT-2 full graph would take hours
   sequentially on this machine.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLE = 32


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    import torch

    from circuitlang.backend import load_model
    from circuitlang.check import TaskSpec
    from circuitlang.discovery.acdc import acdc, acdc_sequential
    from circuitlang.discovery.attribution import eap_ig_scores, eap_scores, exact_scores
    from circuitlang.evaluation import Evaluator, Session, task_data
    from circuitlang.graph import CircuitGraph
    from circuitlang.models import all_edges

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    loaded = load_model("zoo:gpt2-random")
    data = task_data(TaskSpec("t", ("random_tokens", {"n": 8, "seq_len": 16})), loaded)
    session = Session(loaded, data, "resample", "logit_diff", batch_size=8)
    evaluator = Evaluator(session)
    clean = data.clean
    with torch.no_grad():
        loaded.model(clean)
        plain = min(_timed(lambda: loaded.model(clean))[0] for _ in range(3))
    eap = min(_timed(lambda: eap_scores(session, evaluator=evaluator))[0] for _ in range(2))
    eap_ig = _timed(lambda: eap_ig_scores(session, steps=5, evaluator=evaluator))[0]
    edges = all_edges(loaded.shape)
    sample = random.Random(0).sample(edges, SAMPLE)
    batched = _timed(lambda: exact_scores(session, sample, evaluator=evaluator))[0]
    full = CircuitGraph.from_edges(edges)
    one = _timed(lambda: [evaluator.faithfulness([full - CircuitGraph.from_edges([e])]) for e in sample[:4]])[0] / 4
    print(f"GPT-2-shape zoo model, 8 x 16 tokens, {os.environ.get('BENCH_THREADS', '2')} threads\n")
    print("| measurement | seconds | ratio |\n|---|---|---|")
    print(f"| plain forward | {plain:.3f} | 1 |")
    print(f"| EAP, every edge | {eap:.2f} | {eap / plain:.1f} forward passes (target <= 3) |")
    print(f"| EAP-IG, 5 steps, every edge | {eap_ig:.2f} | {eap_ig / plain:.1f} forward passes |")
    per_edge_batched = batched / (SAMPLE + 1)
    print(f"| exact patching, {SAMPLE} edges batched | {batched:.2f} | {per_edge_batched:.3f} s per edge |")
    print(f"| exact patching, one engine call per edge | {one * SAMPLE:.2f} (from 4) | {one:.3f} s per edge; "
          f"batched is {one / per_edge_batched:.1f}x faster |")
    print(f"| exact patching of all {len(edges)} edges, extrapolated | {per_edge_batched * len(edges):.0f} batched "
          f"vs {one * len(edges):.0f} one per call | |")
    trained = load_model("zoo:induction-trained")
    tdata = task_data(TaskSpec("t", ("induction", {"n": 64})), trained)
    tev = Evaluator(Session(trained, tdata, "resample"))
    start = CircuitGraph.from_edges(all_edges(trained.shape))
    fast_t, fast = _timed(lambda: acdc(tev, start, 0.01))
    slow_t, slow = _timed(lambda: acdc_sequential(tev, start, 0.01))
    print(f"| ACDC batched, zoo:induction-trained (81 edges) | {fast_t:.2f} | {fast.passes} engine calls, "
          f"{len(fast.circuit.edges)} edges kept |")
    print(f"| ACDC one edge per pass | {slow_t:.2f} | {slow.passes} engine calls, {len(slow.circuit.edges)} edges "
          f"kept; batched is {slow_t / fast_t:.1f}x faster; same circuit: {fast.circuit == slow.circuit} |")


if __name__ == "__main__":
    main()
