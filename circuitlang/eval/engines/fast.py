"""The fast engine: evaluate K circuit variants at once, computing only what differs.

Under the semantics of edge patching (docs/evaluation.md, "Semantics") a
receiver's input is

    input_R = abl_input_R + sum over edges (S -> R) in the circuit of (out_S - abl_S)

where `abl_input_R` is what R would read if every edge were cut (the corrupted run's
input under resample ablation). So only the nodes with edges in a circuit are
computed, each head alone in its own d_head space (the nodes outside the circuit
send their ablated value, whatever they compute). A node's output depends only on the
circuit edges in its ancestry: variants that agree there share one computation (the
unchanged prefix of a minimality sweep is computed once), and all distinct
computations of one layer run as one batched tensor operation. Logits are computed
at the readout position only, and so is every MLP whose output reaches only the logits
(directly or through other such MLPs: an MLP is position-wise, so nothing else of it is
read), which in a minimality sweep is most of the late MLPs' work.

It computes the model by hand from the backend's pieces (embedding, per-layer weights,
norms, MLPs, unembedding); a model whose `unsupported()` names anything is refused.
Post-norm divisors are frozen at the clean run's (`eval.post_norms`).
Every shortcut is checked against `engines.reference` (the literal masked formula with
hooks) on random models in tests/test_engines.py.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ...core.graph import EMBED, LOGITS, CircuitGraph, Node
from ..backends.base import Backend, Site, SiteKind, Unsupported
from ..post_norms import divisors, head_scale
from ..positions import position_index, position_mask


@dataclass
class _Batch:
    """Per-batch constants: ablated values and the inputs every receiver reads when all is cut."""

    embed: torch.Tensor  # clean embedding output [B, P, d]
    ablated: Mapping[Node, torch.Tensor]
    abl_attn_in: list[torch.Tensor]  # [B, P, d] per layer
    abl_mlp_in: list[torch.Tensor]
    abl_final: torch.Tensor
    named: Mapping[str, torch.Tensor]
    masks: dict[frozenset, torch.Tensor]  # positions -> [B, P, 1]
    divisors: Mapping[Site, torch.Tensor]  # post-norm divisors of the clean run, frozen (eval.post_norms)


class _Deltas:
    """Each computed node's outputs minus its ablated value: one tensor per node, a row per
    signature; [rows, B, P, d], or [rows, B, 1, d] at the readout position alone for a node
    in `end_only`."""

    def __init__(self, embed_delta: torch.Tensor, end_only: frozenset[Node] = frozenset()):
        self._tensors: dict[Node, torch.Tensor] = {EMBED: embed_delta.unsqueeze(0)}
        self._rows: dict[Node, dict[int, int]] = {EMBED: {0: 0}}
        self.end_only = end_only

    def add(self, node: Node, idents: list[int], values: torch.Tensor) -> None:
        self._tensors[node] = values
        self._rows[node] = {ident: i for i, ident in enumerate(idents)}

    def tensor(self, node: Node) -> torch.Tensor:
        return self._tensors[node]

    def row(self, node: Node, ident: int) -> int:
        return self._rows[node][ident]


class FastEngine:
    """Evaluates circuit variants on one model (see the module docstring)."""

    def __init__(self, backend: Backend):
        problems = backend.unsupported()
        if problems:
            raise Unsupported(", ".join(problems))
        self.backend = backend
        self.shape = backend.shape
        self._last_divisors: tuple[torch.Tensor, dict] | None = None  # (clean tokens, their divisors)

    # -- per-batch preparation ---------------------------------------------------------
    def _prepare(self, clean: torch.Tensor, ablated: Mapping[Node, torch.Tensor],
                 named: Mapping[str, torch.Tensor]) -> _Batch:
        backend, shape = self.backend, self.shape
        batch, length = clean.shape
        full = (batch, length, shape.d_model)
        embed = backend.embed(clean)
        resid = ablated[EMBED].expand(full).to(embed.dtype)
        attn_in, mlp_in = [], []
        for layer in range(shape.n_layers):
            attn_in.append(resid)
            attn = sum(ablated[Node.attn(layer, h)] for h in range(shape.n_heads)) + backend.layers[layer].attn.b_O
            mid = resid + attn
            if not shape.attn_only:
                mlp_in.append(resid if shape.parallel_attn_mlp else mid)
                mid = mid + ablated[Node.mlp(layer)]
            resid = mid.expand(full)
        return _Batch(embed, ablated, attn_in, mlp_in, resid, named, {}, self._divisors(clean))

    def _divisors(self, clean: torch.Tensor) -> dict:
        """The clean run's post-norm divisors (eval.post_norms): a forward pass of its own,
        so kept for the last batch, which a session evaluates chunk after chunk."""
        if self._last_divisors is None or self._last_divisors[0] is not clean:
            self._last_divisors = (clean, divisors(self.backend, clean))
        return self._last_divisors[1]

    def _mask(self, batch: _Batch, positions: frozenset, length: int) -> torch.Tensor:
        """[B, P, 1]: 1 at any of these positions (two names may fall on one token)."""
        if positions not in batch.masks:
            masks = [position_mask(p, batch.named, length) for p in sorted(positions, key=str)]
            union = torch.stack(masks).amax(dim=0)  # type: ignore[arg-type]
            batch.masks[positions] = union.to(batch.embed.dtype).unsqueeze(-1)
        return batch.masks[positions]

    # -- evaluation ------------------------------------------------------------------------
    def run(self, clean: torch.Tensor, ablated: Mapping[Node, torch.Tensor], variants: Sequence[CircuitGraph],
            named: Mapping[str, torch.Tensor], columns: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [K, B, vocab] at each example's END position, one row per variant; with
        `columns` ([B, C] token ids), only those tokens' logits [K, B, C]."""
        with torch.no_grad():
            batch = self._prepare(clean, ablated, named)
            incoming = [self._incoming(v) for v in variants]
            signatures, keys = self._signatures(incoming)
            deltas = self._compute_nodes(batch, keys, clean.shape[1], _end_only(incoming))
            return self._logits(batch, incoming, signatures, deltas, columns)

    def _incoming(self, variant: CircuitGraph) -> dict[tuple[Node, str | None], list[tuple[Node, frozenset | None]]]:
        """Per receiver port (`ModelShape.port`), each sender once with the positions its
        edges cover (None: all).

        `S -> R` and `S -> R @END` together are one term over all positions, not two.
        """
        positions: dict[tuple[Node, str | None], dict[Node, set | None]] = defaultdict(dict)
        for edge in variant.edges:
            per_sender = positions[self.shape.port(edge.receiver, edge.channel)]
            if edge.position is None or per_sender.get(edge.sender, set()) is None:
                per_sender[edge.sender] = None
            else:
                per_sender.setdefault(edge.sender, set()).add(edge.position)
        return {port: [(s, None if p is None else frozenset(p)) for s, p in sorted(senders.items(), key=_by_sender)]
                for port, senders in positions.items()}

    def _signatures(self, incoming: list[dict]) -> tuple[list[dict[Node, int]], dict[Node, dict[int, tuple]]]:
        """Give each (variant, node) the id of what the node computes; equal ids, equal outputs.

        Returns per-variant {node: id} and, per node, {id: its input terms per channel}.
        """
        interned: dict[tuple, int] = {}
        keys: dict[Node, dict[int, tuple]] = defaultdict(dict)
        signatures: list[dict[Node, int]] = []
        for inc in incoming:
            active = sorted({s for terms in inc.values() for s, _ in terms} - {EMBED})
            sig: dict[Node, int] = {EMBED: 0}
            for node in active:
                channels = ("q", "k", "v") if node.is_head else (None,)
                key = (node,) + tuple(  # a head's k and v read its key/value group's shared input
                    frozenset((s, pos, sig[s]) for s, pos in inc.get(self.shape.port(node, ch), ()))
                    for ch in channels)
                ident = interned.setdefault(key, len(interned) + 1)
                keys[node][ident] = key[1:]
                sig[node] = ident
            signatures.append(sig)
        return signatures, keys

    def _inputs(self, batch: _Batch, deltas: "_Deltas", base: torch.Tensor, term_sets: list[frozenset],
                length: int, at_end: bool = False) -> torch.Tensor:
        """[D, B, P, d]: `base` plus the sum of each set's terms; with `at_end`, [D, B, 1, d]
        at each example's readout position only.

        Terms are gathered per (sender, positions) and added with `index_add_`, so the work
        is the number of (set, term) pairs, with no copy of unused outputs.
        """
        if at_end:
            base = _at_end(base.expand(batch.embed.shape), batch)
        out = base.unsqueeze(0).repeat(len(term_sets), *([1] * base.dim()))
        pairs: dict[tuple, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        for d, terms in enumerate(term_sets):
            for sender, positions, ident in sorted(terms, key=_term_order):
                targets, rows = pairs[(sender, positions)]
                targets.append(d)
                rows.append(deltas.row(sender, ident))
        for (sender, positions), (targets, rows) in pairs.items():
            source = deltas.tensor(sender)[torch.tensor(rows)]
            if at_end and sender not in deltas.end_only:
                source = _at_end(source, batch)
            if positions is not None:
                mask = self._mask(batch, positions, length)
                source = source * (_at_end(mask, batch) if at_end else mask)
            out.index_add_(0, torch.tensor(targets), source)
        return out

    def _compute_nodes(self, batch: _Batch, keys: dict[Node, dict[int, tuple]], length: int,
                       end_only: frozenset[Node]) -> "_Deltas":
        deltas = _Deltas(batch.embed - batch.ablated[EMBED], end_only)
        for layer in range(self.shape.n_layers):
            heads = [(node, ident, key) for node in sorted(keys) if node.kind == "head" and node.layer == layer
                     for ident, key in keys[node].items()]
            if heads:
                self._heads(batch, deltas, layer, heads, length)
            mlp = Node.mlp(layer)
            if mlp in keys:
                items = list(keys[mlp].items())
                at_end = mlp in end_only
                x = self._inputs(batch, deltas, batch.abl_mlp_in[layer], [key[0] for _, key in items], length, at_end)
                out = self._mlp(layer, x)
                post = self.backend.layers[layer].mlp_post
                where = (lambda t: _at_end(t.expand(*batch.embed.shape[:2], t.shape[-1]), batch)) if at_end \
                    else (lambda t: t)  # noqa: E731
                if post is not None:
                    out = out * (post.scale / where(batch.divisors[Site(SiteKind.MLP_POST_SCALE, layer)]))
                deltas.add(mlp, [ident for ident, _ in items], out - where(batch.ablated[mlp]))
        return deltas

    def _heads(self, batch: _Batch, deltas: "_Deltas", layer: int, heads: list, length: int) -> None:
        """Compute every (head, signature) of one layer; store each output minus its ablated value.

        Inputs are formed and normalised once per distinct set of terms across heads and
        channels; then each head projects its rows with its own weights (no weight copies).
        """
        pieces = self.backend.layers[layer]
        attn = pieces.attn
        wanted = [key[c] for _, _, key in heads for c in range(3)]
        distinct = list(dict.fromkeys(wanted))
        where = {terms: i for i, terms in enumerate(distinct)}
        x = self._inputs(batch, deltas, batch.abl_attn_in[layer], distinct, length)
        normed = pieces.attn_norm.apply(x)
        by_head: dict[int, list[int]] = defaultdict(list)
        for i, (node, _, _) in enumerate(heads):
            by_head[node.head].append(i)
        for head, items in by_head.items():
            pick = lambda c: normed[torch.tensor([where[heads[i][2][c]] for i in items])]  # noqa: E731
            q = pick(0) @ attn.weight("q", head) + attn.bias("q", head)
            k = pick(1) @ attn.weight("k", head) + attn.bias("k", head)
            v = pick(2) @ attn.weight("v", head) + attn.bias("v", head)
            q, k = attn.query_key(q, k)
            pattern = torch.softmax(attn.scores(q, k), dim=-1)
            out = (pattern @ v) @ attn.W_O[head]
            scale = head_scale(self.backend, layer, batch.divisors.get(Site(SiteKind.ATTN_POST_SCALE, layer)))
            if scale is not None:
                out = out * scale
            delta = out - batch.ablated[Node.attn(layer, head)]
            deltas.add(Node.attn(layer, head), [heads[i][1] for i in items], delta)

    def _mlp(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        pieces = self.backend.layers[layer]
        assert pieces.mlp is not None and pieces.mlp_norm is not None
        d, b, p, m = x.shape
        return pieces.mlp(pieces.mlp_norm.apply(x.reshape(d * b, p, m))).reshape(d, b, p, m)

    def _logits(self, batch: _Batch, incoming: list[dict], signatures: list[dict[Node, int]],
                deltas: "_Deltas", columns: torch.Tensor | None = None) -> torch.Tensor:
        rows = torch.arange(batch.embed.shape[0])
        readout = batch.named["END"]
        base = batch.abl_final[rows, readout]  # [B, d]
        finals = []
        for inc, sig in zip(incoming, signatures):
            x = base
            for sender, positions in inc.get((LOGITS, None), ()):
                delta = deltas.tensor(sender)[deltas.row(sender, sig[sender])]
                term = delta[:, 0] if sender in deltas.end_only else delta[rows, readout]
                if positions is not None:
                    hit = torch.stack([position_index(p, batch.named) == readout for p in positions]).any(0)
                    term = term * hit.to(term.dtype)[:, None]
                x = x + term
            finals.append(x)
        stacked = torch.stack(finals)  # [K, B, d]
        k, b, d = stacked.shape
        normed = self.backend.final_norm.apply(stacked.reshape(k * b, 1, d))
        if columns is not None:  # the metric reads these tokens only: skip the rest of the vocabulary
            wanted = columns.to(normed.device).repeat(k, 1)  # [K * B, C]
            return self.backend.unembed_columns(normed[:, 0], wanted).reshape(k, b, -1)
        return self.backend.unembed(normed).reshape(k, b, -1)


def _end_only(incoming: list[dict]) -> frozenset[Node]:
    """The MLPs whose output, in every variant, reaches only the logits, directly or
    through other such MLPs: only their readout position is ever read."""
    consumers: dict[Node, set[Node]] = defaultdict(set)
    for inc in incoming:
        for (receiver, _), terms in inc.items():
            for sender, _ in terms:
                consumers[sender].add(receiver)
    found: set[Node] = set()
    for node in sorted((n for n in consumers if n.kind == "mlp"), key=lambda n: -n.layer):
        if all(r == LOGITS or r in found for r in consumers[node]):
            found.add(node)
    return frozenset(found)


def _at_end(tensor: torch.Tensor, batch: _Batch) -> torch.Tensor:
    """[..., B, P, x] -> [..., B, 1, x]: each example's readout position."""
    rows = torch.arange(tensor.shape[-3], device=tensor.device)
    return tensor[..., rows, batch.named["END"], :].unsqueeze(-2)


# Terms are summed in a fixed order, so that results do not depend on the iteration order
# of sets (which, for tuples holding None, changes from process to process on Python 3.11).
def _by_sender(item: tuple) -> tuple:
    return item[0].sort_key()


def _term_order(term: tuple) -> tuple:
    sender, positions, ident = term
    return sender.sort_key(), () if positions is None else tuple(sorted(map(str, positions))), ident
