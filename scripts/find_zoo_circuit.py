"""Find the circuit of the trained zoo model by activation patching (TransformerLens hooks).

    .venv/bin/python scripts/find_zoo_circuit.py [--model induction-trained] [--n 256]

1. Head patching: patch one head's output with its output on the corrupted prompt
   (resample) and report the share of the logit difference that is lost.
2. Edge patching: every edge S -> R of the model (S = embed, a head or an MLP; R = a head's
   q/k/v input, an MLP's input or the logits). A circuit C is evaluated by rebuilding each
   receiver's input as  input_R - sum over S with (S -> R) not in C of (out_S - corrupt_S)
   (DESIGN.md section 4), with faithfulness f(C) = (m(C) - m(empty)) / (m(model) - m(empty)),
   m = mean logit difference (answer - wrong) at END.
3. ACDC-style pruning: visit receivers from the logits backwards; drop an edge when f falls
   by less than --tau without it; then drop edges whose sender no longer reaches the logits.
4. Report the found circuit, its faithfulness under resample and zero ablation, and what
   each of its edges is worth (f lost without it). stdlib/zoo/induction_trained.circ
   records the result.

This script is self-contained (it does not use circuitlang's evaluator) so that it can
serve as ground truth for it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def senders(cfg) -> list[tuple[str, int]]:
    out = [("embed", -1)]
    for layer in range(cfg.n_layers):
        out += [(f"L{layer}.H{h}", layer) for h in range(cfg.n_heads)]
        if not cfg.attn_only:
            out.append((f"L{layer}.MLP", layer))
    return out


def receivers(cfg) -> list[tuple[str, int]]:
    out = []
    for layer in range(cfg.n_layers):
        out += [(f"L{layer}.H{h}.{c}", layer) for h in range(cfg.n_heads) for c in "qkv"]
        if not cfg.attn_only:
            out.append((f"L{layer}.MLP", layer))
    return out + [("logits", cfg.n_layers)]


def feeding(cfg, receiver: str) -> list[str]:
    if receiver == "logits":
        return [s for s, _ in senders(cfg)]
    layer, is_mlp = int(receiver.split(".")[0][1:]), receiver.endswith("MLP")
    return [s for s, sl in senders(cfg) if sl < layer or (is_mlp and sl == layer and not s.endswith("MLP"))]


def all_edges(cfg) -> list[str]:
    return [f"{s} -> {r}" for r, _ in receivers(cfg) for s in feeding(cfg, r)]


def _sender_hooks(cfg, store):
    def embed(act, hook):
        store["embed"] = store.get("embed", 0) + act

    def result(layer):
        def fn(act, hook):
            for h in range(cfg.n_heads):
                store[f"L{layer}.H{h}"] = act[:, :, h]
        return fn

    def mlp(layer):
        return lambda act, hook: store.__setitem__(f"L{layer}.MLP", act)

    hooks = [("hook_embed", embed), ("hook_pos_embed", embed)]
    for layer in range(cfg.n_layers):
        hooks.append((f"blocks.{layer}.attn.hook_result", result(layer)))
        if not cfg.attn_only:
            hooks.append((f"blocks.{layer}.hook_mlp_out", mlp(layer)))
    return hooks


class EdgePatcher:
    """Evaluates circuits (sets of edge strings) on one model, task and ablation."""

    def __init__(self, model, data, ablation: str = "resample"):
        self.model, self.data, self.ablation, self.cfg = model, data, ablation, model.cfg
        model.set_use_attn_result(True)
        model.set_use_split_qkv_input(True)
        if not self.cfg.attn_only:
            model.set_use_hook_mlp_in(True)
        self.corrupt: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            if ablation == "resample":
                model.run_with_hooks(data.corrupt, fwd_hooks=_sender_hooks(self.cfg, self.corrupt))
            self.full = self.metric_of(model(data.clean))
        self.empty = self.metric(set())

    def metric_of(self, logits: torch.Tensor) -> float:
        rows = torch.arange(len(self.data))
        end = logits[rows, self.data.readout]
        return float((end[rows, self.data.answer] - end[rows, self.data.wrong]).mean())

    def logits(self, edges: set[str]) -> torch.Tensor:
        cfg, current = self.cfg, {}

        def cut(receiver):
            total = 0
            for s in feeding(cfg, receiver):
                if f"{s} -> {receiver}" not in edges:
                    total = total + current[s] - (self.corrupt[s] if self.ablation == "resample" else 0)
            return total

        def qkv(layer, c):
            def fn(act, hook):
                act = act.clone()
                for h in range(cfg.n_heads):
                    act[:, :, h] -= cut(f"L{layer}.H{h}.{c}")
                return act
            return fn

        hooks = _sender_hooks(cfg, current)
        for layer in range(cfg.n_layers):
            hooks += [(f"blocks.{layer}.hook_{c}_input", qkv(layer, c)) for c in "qkv"]
            if not cfg.attn_only:
                hooks.append((f"blocks.{layer}.hook_mlp_in", lambda a, hook, r=f"L{layer}.MLP": a - cut(r)))
        hooks.append((f"blocks.{cfg.n_layers - 1}.hook_resid_post", lambda a, hook: a - cut("logits")))
        with torch.no_grad():
            return self.model.run_with_hooks(self.data.clean, fwd_hooks=hooks, reset_hooks_end=True)

    def metric(self, edges: set[str]) -> float:
        return self.metric_of(self.logits(edges))

    def f(self, edges: set[str]) -> float:
        return (self.metric(edges) - self.empty) / (self.full - self.empty)


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
        node = lambda r: r if r == "logits" or r.endswith("MLP") else r.rsplit(".", 1)[0]  # noqa: E731
        live = {"logits"} | {s for e in edges for s in [e.split(" -> ")[0]]
                             if node(e.split(" -> ")[1]) == "logits"}
        changed = True
        while changed:
            before = len(live)
            live |= {e.split(" -> ")[0] for e in edges if node(e.split(" -> ")[1]) in live}
            changed = len(live) != before
        kept = {e for e in edges if e.split(" -> ")[0] in live and node(e.split(" -> ")[1]) in live}
        if kept == edges:
            return kept
        edges = kept


def acdc(patcher: EdgePatcher, tau: float) -> set[str]:
    cfg = patcher.cfg
    edges = set(all_edges(cfg))
    current = patcher.f(edges)
    for receiver, _ in reversed(receivers(cfg)):
        for sender in reversed(feeding(cfg, receiver)):
            edge = f"{sender} -> {receiver}"
            if edge not in edges:
                continue
            trial = patcher.f(edges - {edge})
            if current - trial < tau:
                edges.discard(edge)
                current = trial
    return reaches_logits(edges)


def main() -> int:
    import circuitlang.zoo as zoo
    from circuitlang.tasks import GENERATORS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="induction-trained")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tau", type=float, default=0.01, help="prune an edge when f drops by less than this")
    args = parser.parse_args()
    torch.set_num_threads(1)
    entry = zoo.ZOO[args.model]
    model = zoo.build(args.model)
    data = GENERATORS[entry.task](model, n=args.n, seed=args.seed, **entry.task_kwargs)
    print(f"zoo:{args.model} on {entry.task}({entry.task_kwargs}, n={args.n}, seed={args.seed})")

    print("\n1. head patching (resample): share of the logit difference lost")
    for head, lost in head_patching(model, data).items():
        print(f"   {head}: {lost:+.3f}")

    patcher = EdgePatcher(model, data, "resample")
    print(f"\n2. edge patching, resample: m(model) = {patcher.full:.3f}, m(empty) = {patcher.empty:.3f}, "
          f"{len(all_edges(model.cfg))} edges")
    every = set(all_edges(model.cfg))
    single = sorted(((patcher.f(every) - patcher.f(every - {e}), e) for e in every), reverse=True)
    for loss, e in single[:12]:
        print(f"   model without {e:<18} loses {loss:.4f}")

    found = acdc(patcher, args.tau)
    print(f"\n3. ACDC-style pruning (tau = {args.tau}) keeps {len(found)} edges:")
    whole = patcher.f(found)
    for e in sorted(found):
        print(f"   {e:<18} f without it: {patcher.f(found - {e}):.4f} (loses {whole - patcher.f(found - {e}):.4f})")
    zero = EdgePatcher(model, data, "zero")
    held_out = GENERATORS[entry.task](model, n=args.n, seed=args.seed + 1, **entry.task_kwargs)
    print(f"\n4. f(found) = {whole:.4f} under resample; {zero.f(found):.4f} under zero ablation "
          f"(m(model) = {zero.full:.3f}, m(empty) = {zero.empty:.3f}); "
          f"{EdgePatcher(model, held_out, 'resample').f(found):.4f} under resample on held-out data "
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
