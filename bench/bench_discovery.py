"""Benchmark of discovery (issue: circuit discovery). By hand: `.venv/bin/python bench/bench_discovery.py`.

On the GPT-2-shape zoo model (random weights), CPU, 8 prompts x 16 tokens, resample
ablation, logit difference, ratios measured in this run (the plain pass and EAP: fastest
of 5 runs):

1. EAP and EAP-IG (5 steps) in plain forward-pass equivalents (target for EAP: <= 3),
   EAP through TransformerLens's split q/k/v inputs (the fallback route), and, in a
   second table, where one EAP call spends its time.
2. Exact per-edge patching: a sample of edges, batched with the fast engine, against one
   fast-engine call per edge and against one reference-engine call (`run_with_hooks`
   with the masked formula) per edge; extrapolated to all 32,491 edges.
3. ACDC with batched candidates against the literal one-edge-per-pass ACDC: on the
   GPT-2-shape model starting from every edge into the last MLP and the logits (313
   edges: two receivers with many senders, where batching pays; the full 32,491-edge
   graph would take hours sequentially on this machine), and on the zoo's trained
   induction model starting from all its 81 edges (receivers with at most 9 senders).
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


def _fastest(fn, runs: int = 5) -> float:
    return min(_timed(fn)[0] for _ in range(runs))


def main() -> None:
    import torch

    from circuitlang.core.graph import CircuitGraph
    from circuitlang.core.shapes import all_edges
    from circuitlang.discovery.methods.eap import eap_scores
    from circuitlang.discovery.methods.eap_ig import eap_ig_scores
    from circuitlang.discovery.methods.exact import exact_scores
    from circuitlang.eval.engines.reference import run_reference
    from circuitlang.eval.evaluator import Evaluator
    from circuitlang.eval.loading import load_model
    from circuitlang.eval.session import Session
    from circuitlang.eval.tasks.registry import task_data
    from circuitlang.lang.check import TaskSpec

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    loaded = load_model("zoo:gpt2-random")
    data = task_data(TaskSpec("t", ("random_tokens", {"n": 8, "seq_len": 16})), loaded)
    session = Session(loaded, data, "resample", "logit_diff", batch_size=8)
    evaluator = Evaluator(session)
    clean = data.clean
    with torch.no_grad():
        loaded.model(clean)
        plain = _fastest(lambda: loaded.model(clean))
    eap = _fastest(lambda: eap_scores(session, evaluator=evaluator))
    eap_ig = _timed(lambda: eap_ig_scores(session, steps=5, evaluator=evaluator))[0]
    import circuitlang.discovery.receiver_grads as receiver_grads

    head_space = receiver_grads.head_space_supported
    receiver_grads.head_space_supported = lambda backend: False  # the fallback route, for comparison
    try:
        eap_split = _fastest(lambda: eap_scores(session, evaluator=evaluator))
    finally:
        receiver_grads.head_space_supported = head_space
    edges = all_edges(loaded.shape)
    sample = random.Random(0).sample(edges, SAMPLE)
    batched = _timed(lambda: exact_scores(session, sample, evaluator=evaluator))[0]
    full = CircuitGraph.from_edges(edges)
    one = _timed(lambda: [evaluator.faithfulness([full - CircuitGraph.from_edges([e])]) for e in sample[:4]])[0] / 4
    print(f"GPT-2-shape zoo model, 8 x 16 tokens, {os.environ.get('BENCH_THREADS', '2')} threads\n")
    print("| measurement | seconds | ratio |\n|---|---|---|")
    print(f"| plain forward | {plain:.3f} | 1 |")
    print(f"| EAP, every edge | {eap:.2f} | {eap / plain:.1f} forward passes (target <= 3) |")
    print(f"| EAP via split q/k/v inputs (fallback route) | {eap_split:.2f} | {eap_split / plain:.1f} forward passes |")
    print(f"| EAP-IG, 5 steps, every edge | {eap_ig:.2f} | {eap_ig / plain:.1f} forward passes |")
    per_edge_batched = batched / (SAMPLE + 1)
    print(f"| exact patching, {SAMPLE} edges batched | {batched:.2f} | {per_edge_batched:.3f} s per edge |")
    print(f"| exact patching, one engine call per edge | {one * SAMPLE:.2f} (from 4) | {one:.3f} s per edge; "
          f"batched is {one / per_edge_batched:.1f}x faster |")
    _, clean_part, ablated, named = session.batches[0]
    with torch.no_grad():
        ref = _timed(lambda: [run_reference(loaded, clean_part, ablated.outputs,
                                            [full - CircuitGraph.from_edges([e])], named) for e in sample[:2]])[0] / 2
    print(f"| exact patching, one reference-engine call (run_with_hooks) per edge | {ref * SAMPLE:.2f} (from 2) | "
          f"{ref:.3f} s per edge; batched is {ref / per_edge_batched:.1f}x faster |")
    print(f"| exact patching of all {len(edges)} edges, extrapolated | {per_edge_batched * len(edges):.0f} batched "
          f"vs {one * len(edges):.0f} one fast call per edge vs {ref * len(edges):.0f} one reference call per edge | |")
    last = loaded.shape.n_layers - 1
    late = CircuitGraph.from_edges(e for e in edges if e.receiver.kind == "logits" or
                                   (e.receiver.kind == "mlp" and e.receiver.layer == last))
    _acdc_rows(f"zoo:gpt2-random from every edge into L{last}.MLP and logits ({len(late.edges)} edges)",
               evaluator, late)
    trained = load_model("zoo:induction-trained")
    tdata = task_data(TaskSpec("t", ("induction", {"n": 64})), trained)
    tev = Evaluator(Session(trained, tdata, "resample"))
    _acdc_rows("zoo:induction-trained from all 81 edges", tev, CircuitGraph.from_edges(all_edges(trained.shape)))
    _eap_breakdown(session, evaluator, plain, eap)


def _acdc_rows(label: str, evaluator, start) -> None:
    from circuitlang.discovery.methods.acdc import acdc, acdc_sequential

    fast_t, fast = _timed(lambda: acdc(evaluator, start, 0.01))
    slow_t, slow = _timed(lambda: acdc_sequential(evaluator, start, 0.01))
    print(f"| ACDC batched, {label} | {fast_t:.2f} | {fast.passes} engine calls, "
          f"{len(fast.circuit.edges)} edges kept |")
    print(f"| ACDC one edge per pass | {slow_t:.2f} | {slow.passes} engine calls, {len(slow.circuit.edges)} edges "
          f"kept; batched is {slow_t / fast_t:.1f}x faster; same circuit: {fast.circuit == slow.circuit} |")



def _eap_breakdown(session, evaluator, plain: float, eap: float) -> None:
    """Where one EAP call goes: the forward pass with gradients, the backward pass,
    carrying head-space gradients back to the heads' inputs, and the scoring products;
    also the copy of W_U's transpose that TransformerLens 3.x's Unembed makes on every
    call, inside the plain pass (TransformerLensBackend.unembed avoids it)."""
    import torch

    import circuitlang.discovery.receiver_grads as rg
    from circuitlang.core.shapes import all_edges
    from circuitlang.discovery.edge_scores import accumulate, scoring_plan

    model, data = session.backend.model, session.data
    with torch.enable_grad():
        forward = _fastest(lambda: model(data.clean, stop_at_layer=model.cfg.n_layers))
    grads = _fastest(lambda: rg.receiver_grads(session, 0, lambda x: x, keep_senders=True))
    parts: dict[str, list[float]] = {"backward": [], "carry back": []}

    def timed(label, fn):
        def wrapper(*args, **kwargs):
            seconds, result = _timed(lambda: fn(*args, **kwargs))
            parts[label].append(seconds)
            return result
        return wrapper

    original_grad, original_carry = torch.autograd.grad, rg._to_inputs
    rg.torch.autograd.grad, rg._to_inputs = timed("backward", original_grad), timed("carry back", original_carry)
    try:
        for _ in range(5):
            rg.receiver_grads(session, 0, lambda x: x, keep_senders=True)
    finally:
        rg.torch.autograd.grad, rg._to_inputs = original_grad, original_carry
    gradients, outputs = rg.receiver_grads(session, 0, lambda x: x, keep_senders=True)
    _, _, ablated, named = session.batches[0]
    edges = all_edges(session.backend.shape)
    plan = scoring_plan(session.backend.shape, edges)
    scoring = _fastest(lambda: accumulate(torch.zeros(len(edges), dtype=torch.float64), session, plan, gradients,
                                          outputs, ablated, named))
    copy = _fastest(lambda: model.W_U.T.contiguous())
    print("\nWhere one EAP call goes (fastest of 5 each):\n")
    print("| part | seconds | plain passes |\n|---|---|---|")
    for label, seconds in [("eap_scores, every edge", eap),
                           ("forward with gradients recorded, no unembedding", forward),
                           ("receiver gradients (forward + backward + carry back)", grads),
                           ("  backward", min(parts["backward"])),
                           ("  carry head gradients back to the heads' inputs", min(parts["carry back"])),
                           ("scoring products", scoring),
                           ("W_U.T.contiguous() (inside the plain forward; circuitlang avoids it)", copy)]:
        print(f"| {label} | {seconds:.3f} | {seconds / plain:.2f} |")


if __name__ == "__main__":
    main()
