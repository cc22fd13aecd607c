"""Find the circuit of the trained zoo model by activation patching (TransformerLens hooks).

    .venv-tl3/bin/python -m scripts.find_zoo_circuit [--model induction-trained] [--n 256]

(from the repository root, as a module: it uses the tests' reference edge patching, which
drives HookedTransformer hooks: TransformerLens 3.x, the environment `make test` sets up).

1. Head patching: patch one head's output with its output on the corrupted prompt
   (resample) and report the share of the logit difference that is lost.
2. Edge patching: every edge S -> R of the model (S = embed, a head or an MLP; R = a head's
   q/k/v input, an MLP's input or the logits). A circuit C is evaluated by rebuilding each
   receiver's input as  input_R - sum over S with (S -> R) not in C of (out_S - corrupt_S)
   (docs/evaluation.md), with faithfulness f(C) = (m(C) - m(empty)) / (m(model) - m(empty)),
   m = mean logit difference (answer - wrong) at END.
3. ACDC-style pruning: visit receivers from the logits backwards; drop an edge when f falls
   by less than --tau without it; then drop edges whose sender no longer reaches the logits.
4. Report the found circuit, its faithfulness under resample and zero ablation, and what
   each of its edges is worth (f lost without it). stdlib/zoo/induction_trained.circ
   records the result.

Edge patching is tests/reference_patching.py, which does not use circuitlang's evaluator
so that it can serve as ground truth for it (tests/test_zoo.py uses it too).
"""

from __future__ import annotations

import argparse

import torch

from tests.reference_patching import ReferencePatcher, all_edges, edge_ends, feeding, receivers


def head_patching(model, data) -> dict[str, float]:
    """Share of the logit difference lost when one head's output is patched from the corrupt run."""
    cfg = model.cfg
    model.set_use_attn_result(True)
    with torch.no_grad():
        _, cache = model.run_with_cache(data.corrupt, names_filter=lambda n: n.endswith("hook_result"))
        rows = torch.arange(len(data))

        def ld(logits):
            end = logits[rows, data.readout]
            return float((end[rows, data.answer] - end[rows, data.wrong]).mean())

        clean = ld(model(data.clean))
        out = {}
        for layer in range(cfg.n_layers):
            for h in range(cfg.n_heads):
                def patch(act, hook, h=h, layer=layer):
                    act = act.clone()
                    act[:, :, h] = cache[f"blocks.{layer}.attn.hook_result"][:, :, h]
                    return act
                patched = model.run_with_hooks(data.clean, fwd_hooks=[(f"blocks.{layer}.attn.hook_result", patch)])
                out[f"L{layer}.H{h}"] = 1 - ld(patched) / clean
    return out


def reaches_logits(edges: set[str]) -> set[str]:
    """Drop edges whose sender has no path to the logits, and edges into dead receivers."""
    edges = set(edges)
    while True:
        live = {"logits"}
        changed = True
        while changed:
            before = len(live)
            live |= {edge_ends(e)[0] for e in edges if edge_ends(e)[1] in live}
            changed = len(live) != before
        kept = {e for e in edges if all(node in live for node in edge_ends(e))}
        if kept == edges:
            return kept
        edges = kept


def acdc(patcher: ReferencePatcher, tau: float) -> set[str]:
    cfg = patcher.cfg
    edges = all_edges(cfg)
    current = patcher(edges)
    for receiver in reversed(receivers(cfg)):
        for sender in reversed(feeding(cfg, receiver)):
            edge = f"{sender} -> {receiver}"
            if edge not in edges:
                continue
            trial = patcher(edges - {edge})
            if current - trial < tau:
                edges.discard(edge)
                current = trial
    return reaches_logits(edges)


def main() -> int:
    import circuitlang.eval.zoo as zoo
    from circuitlang.eval.loading import zoo_model
    from circuitlang.eval.tasks.registry import GENERATORS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="induction-trained")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tau", type=float, default=0.01, help="prune an edge when f drops by less than this")
    args = parser.parse_args()
    torch.set_num_threads(1)
    entry = zoo.ZOO[args.model]
    backend = zoo_model(args.model)
    model = backend.model  # the HookedTransformer the reference patcher hooks
    data = GENERATORS[entry.task](backend, n=args.n, seed=args.seed, **entry.task_kwargs)
    print(f"zoo:{args.model} on {entry.task}({entry.task_kwargs}, n={args.n}, seed={args.seed})")

    print("\n1. head patching (resample): share of the logit difference lost")
    for head, lost in head_patching(model, data).items():
        print(f"   {head}: {lost:+.3f}")

    patcher = ReferencePatcher(model, data, "resample")
    print(f"\n2. edge patching, resample: m(model) = {patcher.full:.3f}, m(empty) = {patcher.empty:.3f}, "
          f"{len(all_edges(model.cfg))} edges")
    every = all_edges(model.cfg)
    single = sorted(((patcher(every) - patcher(every - {e}), e) for e in every), reverse=True)
    for loss, e in single[:12]:
        print(f"   model without {e:<18} loses {loss:.4f}")

    found = acdc(patcher, args.tau)
    print(f"\n3. ACDC-style pruning (tau = {args.tau}) keeps {len(found)} edges:")
    whole = patcher(found)
    for e in sorted(found):
        print(f"   {e:<18} f without it: {patcher(found - {e}):.4f} (loses {whole - patcher(found - {e}):.4f})")
    zero = ReferencePatcher(model, data, "zero")
    held_out = GENERATORS[entry.task](model, n=args.n, seed=args.seed + 1, **entry.task_kwargs)
    print(f"\n4. f(found) = {whole:.4f} under resample; {zero(found):.4f} under zero ablation "
          f"(m(model) = {zero.full:.3f}, m(empty) = {zero.empty:.3f}); "
          f"{ReferencePatcher(model, held_out, 'resample')(found):.4f} under resample on held-out data "
          f"(seed {args.seed + 1})")
    print("\n5. as .circ statements, by sender:")
    by_sender: dict[str, list[str]] = {}
    for e in sorted(found):
        sender, receiver = e.split(" -> ")
        by_sender.setdefault(sender, []).append(receiver)
    for sender, targets in by_sender.items():
        print(f"    {sender} -> {', '.join(targets)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
