"""A self-contained reference implementation of edge patching (docs/evaluation.md, "Semantics"),
written with TransformerLens hooks and nothing from circuitlang's evaluator, so that it
can serve as ground truth for it. Used by tests/test_zoo.py and
scripts/find_zoo_circuit.py.

Every receiver's input is rebuilt as

    input_R - sum over senders S not wired to R in the circuit of (out_S - ablated_S)

where out_S is S's output earlier in the same (patched) run and ablated_S is S's output
on the corrupted input (resample) or 0 (zero). Edges and nodes are plain strings:
`L0.H2 -> L1.H1.k`, `embed`, `L3.MLP`, `logits`.
"""

from __future__ import annotations

import torch

from circuitlang.eval.tasks.base import TaskData


def senders(cfg) -> list[tuple[str, int]]:
    """(name, layer) of every sender, in order; embed is layer -1."""
    out = [("embed", -1)]
    for layer in range(cfg.n_layers):
        out += [(f"L{layer}.H{h}", layer) for h in range(cfg.n_heads)]
        if not cfg.attn_only:
            out.append((f"L{layer}.MLP", layer))
    return out


def receivers(cfg) -> list[str]:
    """Every receiver input, in layer order, `logits` last."""
    out = []
    for layer in range(cfg.n_layers):
        out += [f"L{layer}.H{h}.{c}" for h in range(cfg.n_heads) for c in "qkv"]
        if not cfg.attn_only:
            out.append(f"L{layer}.MLP")
    return out + ["logits"]


def feeding(cfg, receiver: str) -> list[str]:
    """Senders whose output is a term of `receiver`'s input, in order."""
    if receiver == "logits":
        return [s for s, _ in senders(cfg)]
    layer = int(receiver.split(".")[0][1:])
    is_mlp = receiver.endswith("MLP")
    return [s for s, sl in senders(cfg)
            if sl < layer or (is_mlp and sl == layer and not s.endswith("MLP"))]


def all_edges(cfg) -> set[str]:
    return {f"{s} -> {r}" for r in receivers(cfg) for s in feeding(cfg, r)}


def edge_ends(edge: str) -> tuple[str, str]:
    """(sender node, receiver node) of an edge string: `L0.H2 -> L1.H1.k` -> (L0.H2, L1.H1)."""
    sender, receiver = edge.split(" -> ")
    return sender, receiver if receiver == "logits" or receiver.endswith("MLP") else receiver.rsplit(".", 1)[0]


def circuit_nodes(edges: set[str]) -> set[str]:
    return {node for edge in edges for node in edge_ends(edge)}


def logit_diff(logits: torch.Tensor, data: TaskData) -> float:
    """Mean logit difference (answer - wrong) at each prompt's readout position."""
    rows = torch.arange(len(data))
    at_end = logits[rows, data.readout]
    return float((at_end[rows, data.answer] - at_end[rows, data.wrong]).mean())


def sender_hooks(cfg, store: dict[str, torch.Tensor]) -> list:
    """Hooks that record every sender's output in `store` (needs `use_attn_result`)."""
    def embed(act, hook):
        store["embed"] = store.get("embed", 0) + act

    def result(layer):
        def fn(act, hook):
            for h in range(cfg.n_heads):
                store[f"L{layer}.H{h}"] = act[:, :, h]
        return fn

    def mlp(layer):
        def fn(act, hook):
            store[f"L{layer}.MLP"] = act
        return fn

    hooks = [("hook_embed", embed), ("hook_pos_embed", embed)]
    for layer in range(cfg.n_layers):
        hooks.append((f"blocks.{layer}.attn.hook_result", result(layer)))
        if not cfg.attn_only:
            hooks.append((f"blocks.{layer}.hook_mlp_out", mlp(layer)))
    return hooks


class ReferencePatcher:
    """Circuits (sets of edge strings) on one model, task and ablation: their logits, the
    logit difference m(C), and faithfulness f(C) = (m(C) - m(empty)) / (m(model) - m(empty))
    by calling the patcher. Sets the model's attention-result, split-input and MLP-input
    hooks on."""

    def __init__(self, model, data: TaskData, ablation: str):
        self.model, self.data, self.ablation, self.cfg = model, data, ablation, model.cfg
        model.set_use_attn_result(True)
        model.set_use_split_qkv_input(True)
        if not self.cfg.attn_only:
            model.set_use_hook_mlp_in(True)
        self.ablated: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            if ablation == "resample":
                model.run_with_hooks(data.corrupt, fwd_hooks=sender_hooks(self.cfg, self.ablated),
                                     reset_hooks_end=True)
            self.full = logit_diff(model(data.clean), data)
        self.empty = self.metric(set())

    def logits(self, edges: set[str]) -> torch.Tensor:
        """Logits of the clean input with every edge outside `edges` ablated."""
        cfg, current = self.cfg, {}

        def cut(receiver: str) -> torch.Tensor | int:
            total: torch.Tensor | int = 0
            for s in feeding(cfg, receiver):
                if f"{s} -> {receiver}" not in edges:
                    total = total + current[s] - (self.ablated[s] if self.ablation == "resample" else 0)
            return total

        def qkv(layer, channel):
            def fn(act, hook):
                act = act.clone()
                for h in range(cfg.n_heads):
                    act[:, :, h] -= cut(f"L{layer}.H{h}.{channel}")
                return act
            return fn

        def whole(receiver):
            return lambda act, hook: act - cut(receiver)

        hooks = sender_hooks(cfg, current)
        for layer in range(cfg.n_layers):
            hooks += [(f"blocks.{layer}.hook_{c}_input", qkv(layer, c)) for c in "qkv"]
            if not cfg.attn_only:
                hooks.append((f"blocks.{layer}.hook_mlp_in", whole(f"L{layer}.MLP")))
        hooks.append((f"blocks.{cfg.n_layers - 1}.hook_resid_post", whole("logits")))
        with torch.no_grad():
            return self.model.run_with_hooks(self.data.clean, fwd_hooks=hooks, reset_hooks_end=True)

    def metric(self, edges: set[str]) -> float:
        return logit_diff(self.logits(edges), self.data)

    def __call__(self, edges: set[str]) -> float:
        return (self.metric(edges) - self.empty) / (self.full - self.empty)


def wired_distractors(cfg, planted: set[str]) -> dict[str, set[str]]:
    """For each node outside the circuit: its edges from the circuit's nodes (and itself)
    and into them — the edges that wire it into the circuit."""
    every, inside = all_edges(cfg), circuit_nodes(planted)
    return {d: {e for e in every if (edge_ends(e)[0] == d and edge_ends(e)[1] in inside | {d})
                or (edge_ends(e)[1] == d and edge_ends(e)[0] in inside | {d})}
            for d in sorted({s for s, _ in senders(cfg)} - inside)}
