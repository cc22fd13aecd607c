"""Where EAP's time goes on the Llama-shape model of bench/bench_models.py. By hand:
`.venv/bin/python bench/bench_eap_parts.py` (BENCH_LLAMA=small for the quick model).

All in plain forward passes of the same run (fastest of 3): Hugging Face's own forward
+ backward with input gradients only (EAP's floor: it needs both passes), the hooked
forward + backward with the q/k/v and MLP-input captures EAP uses, `receiver_grads`
whole (with carrying head-space gradients back through W and the norm), `accumulate`
(scoring every edge), and EAP.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    import circuitlang.discovery.edge_scores as scoring
    import circuitlang.discovery.receiver_grads as rg
    from bench.bench_models import _fastest, _session, llama_backend
    from circuitlang.discovery.methods.eap import eap_scores
    from circuitlang.eval.backends.base import Site, SiteKind
    from circuitlang.eval.evaluator import Evaluator

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    backend = llama_backend()
    session, clean = _session(backend)
    hf = backend.model.original_model
    embedding = hf.get_input_embeddings()

    def hf_forward_backward():
        x = embedding(clean).detach().requires_grad_(True)
        torch.autograd.grad(hf(inputs_embeds=x).logits[:, -1].sum(), [x])

    def hooked_forward_backward():
        captured = []

        def capture(act):
            captured.append(act.view_as(act))
            return captured[-1]

        hooks = [(Site(SiteKind.EMBED), lambda act: act.detach().requires_grad_(True))]
        for layer in range(backend.shape.n_layers):
            hooks += [(Site(kind, layer), capture) for kind in (SiteKind.Q, SiteKind.K, SiteKind.V, SiteKind.MLP_IN)]
        with torch.enable_grad():
            final = backend.run_with_hooks(clean, hooks, mlp_in=True, stop_at_final=True)
            torch.autograd.grad(final[:, -1].sum(), captured, allow_unused=True)

    edges = scoring.edges_to_score(session, None)
    plan = scoring.scoring_plan(backend.shape, edges)
    _, _, ablated, named = session.batches[0]
    grads, senders = rg.receiver_grads(session, 0, lambda x: x, keep_senders=True)
    evaluator = Evaluator(session)
    with torch.no_grad():
        plain = _fastest(lambda: backend.logits(clean))
    rows = [("plain forward (the bridge's)", plain),
            ("Hugging Face forward + backward, input gradients only", _fastest(hf_forward_backward)),
            ("hooked forward + backward (EAP's captures)", _fastest(hooked_forward_backward)),
            ("receiver_grads (+ carrying gradients back, sender outputs)",
             _fastest(lambda: rg.receiver_grads(session, 0, lambda x: x, keep_senders=True))),
            (f"accumulate ({len(edges)} edges)",
             _fastest(lambda: scoring.accumulate(torch.zeros(len(edges), dtype=torch.float64), session, plan, grads,
                                                 senders, ablated, named))),
            ("EAP (with the session's evaluator, as `circ discover` runs it)",
             _fastest(lambda: eap_scores(session, evaluator=evaluator)))]
    print(f"{backend.shape.describe()}, {torch.get_num_threads()} threads, batch 8 x 16")
    for label, seconds in rows:
        print(f"| {label} | {seconds * 1e3:.0f} ms = {seconds / plain:.2f} plain forwards |")


if __name__ == "__main__":
    main()
