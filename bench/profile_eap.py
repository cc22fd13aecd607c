"""Where one EAP call spends its time, on the GPT-2-shape zoo model (8 x 16 tokens, 2
threads). By hand: `.venv/bin/python bench/profile_eap.py`. Fastest of 5 runs each.

Prints the plain forward pass (the unit of bench_discovery.py's ratios), a forward pass
with gradients recorded, and the parts of `eap_scores`: the receiver gradients (forward
+ backward + carrying head-space gradients back to the heads' inputs), the backward pass
and the carrying back alone, and the scoring products; also the copy of W_U's transpose
that TransformerLens 3.x's Unembed makes on every call (circuitlang.backend.unembed
avoids it).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _fastest(fn, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    import torch

    import circuitlang.discovery.receiver_grads as rg
    from circuitlang.backend import load_model
    from circuitlang.check import TaskSpec
    from circuitlang.discovery.attribution import _accumulate, eap_scores, model_edges
    from circuitlang.evaluation import Evaluator, Session, task_data

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    loaded = load_model("zoo:gpt2-random")
    data = task_data(TaskSpec("t", ("random_tokens", {"n": 8, "seq_len": 16})), loaded)
    session = Session(loaded, data, "resample", "logit_diff", batch_size=8)
    evaluator = Evaluator(session)
    model, layers = loaded.model, loaded.model.cfg.n_layers
    with torch.no_grad():
        plain = _fastest(lambda: model(data.clean))
    with torch.enable_grad():
        forward = _fastest(lambda: model(data.clean, stop_at_layer=layers))
    eap = _fastest(lambda: eap_scores(session, evaluator=evaluator))
    grads = _fastest(lambda: rg.receiver_grads(session, 0, lambda x: x, keep_senders=True))

    parts: dict[str, list[float]] = {"backward": [], "carry back": []}

    def timed(label, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            parts[label].append(time.perf_counter() - start)
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
    edges = model_edges(loaded.shape)
    scoring = _fastest(lambda: _accumulate({}, session, edges, gradients, outputs, ablated.outputs, named, 1.0))
    copy = _fastest(lambda: model.W_U.T.contiguous())  # what TransformerLens 3.x's Unembed does per call
    print("| part | seconds | plain passes |\n|---|---|---|")
    for label, seconds in [("plain forward (logits at every position)", plain),
                           ("forward with gradients recorded, no unembedding", forward),
                           ("eap_scores, every edge", eap),
                           ("receiver gradients (forward + backward + carry back)", grads),
                           ("  backward", min(parts["backward"])),
                           ("  carry head gradients back to the heads' inputs", min(parts["carry back"])),
                           ("scoring products", scoring),
                           ("W_U.T.contiguous() (inside the plain forward; circuitlang avoids it)", copy)]:
        print(f"| {label} | {seconds:.3f} | {seconds / plain:.2f} |")


if __name__ == "__main__":
    main()
