"""A model's shape and the one list of its edges.

`ModelShape` is what static checks, the engines and discovery need to know about a
model's layout: layers, heads (query heads and key/value heads), widths, and whether it
has MLPs and parallel attention. `feeds` says which sender's output is a term of which
receiver's input; `all_edges` lists every edge of the model once, in canonical order.

>>> shape = ModelShape("tiny", n_layers=2, n_heads=2, d_model=8, attn_only=True)
>>> shape.d_head, shape.n_kv_heads, len(all_edges(shape))
(4, 2, 29)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .graph import EMBED, LOGITS, Edge, Node


@dataclass(frozen=True)
class ModelShape:
    """Layers, heads and block layout. `d_head` defaults to d_model // n_heads and
    `n_kv_heads` (key/value heads, fewer under grouped-query attention) to n_heads."""

    name: str
    n_layers: int
    n_heads: int
    d_model: int
    attn_only: bool = False
    parallel_attn_mlp: bool = False
    source: str = ""
    d_head: int = 0
    n_kv_heads: int = 0

    def __post_init__(self) -> None:
        if not self.d_head:
            object.__setattr__(self, "d_head", self.d_model // max(self.n_heads, 1))
        if not self.n_kv_heads:
            object.__setattr__(self, "n_kv_heads", self.n_heads)

    @property
    def kv_group(self) -> int:
        """How many query heads share one key/value head (1 without grouped-query attention)."""
        return max(self.n_heads // max(self.n_kv_heads, 1), 1)

    def port(self, receiver: Node, channel: str | None) -> tuple[Node, str | None]:
        """The receiver input an edge into (`receiver`, `channel`) reaches. Under
        grouped-query attention the heads of a key/value group share one key input and
        one value input, named by the group's first head: in a model with 2 query heads
        per key/value head, `L5.H3.k` is `L5.H2.k` (docs/models.md)."""
        if channel in ("k", "v") and receiver.is_head and self.kv_group > 1:
            return Node.attn(receiver.layer, receiver.head - receiver.head % self.kv_group), channel
        return receiver, channel

    def is_port(self, receiver: Node, channel: str | None) -> bool:
        """Whether (`receiver`, `channel`) is a receiver input's own name (`port` of itself)."""
        return self.kv_group == 1 or self.port(receiver, channel) == (receiver, channel)

    def input_row(self, receiver: Node, channel: str | None) -> int:
        """The row of a head's input among its layer's head inputs, ordered as the
        gradient routes return them: every query head's q, then each key/value group's
        k, then each group's v (n_heads + 2 n_kv_heads rows)."""
        if channel == "q":
            return receiver.head
        group = receiver.head // self.kv_group
        return self.n_heads + (0 if channel == "k" else self.n_kv_heads) + group

    def heads(self) -> list[Node]:
        return [Node.attn(layer, head) for layer in range(self.n_layers) for head in range(self.n_heads)]

    def mlps(self) -> list[Node]:
        return [] if self.attn_only else [Node.mlp(layer) for layer in range(self.n_layers)]

    def all_nodes(self) -> list[Node]:
        return [EMBED, *sorted(self.heads() + self.mlps()), LOGITS]

    def senders(self) -> list[Node]:
        """Every node that writes into the residual stream, in computation order."""
        return [n for n in self.all_nodes() if n.is_sender]

    def describe(self) -> str:
        kind = "attention-only" if self.attn_only else "attention + MLP"
        kv = f" ({self.n_kv_heads} key/value)" if self.n_kv_heads < self.n_heads else ""
        layers = f"{self.n_layers} layer{'s' if self.n_layers != 1 else ''}"
        heads = f"{self.n_heads} head{'s' if self.n_heads != 1 else ''}"
        return f"{layers} x {heads}{kv}, d_model {self.d_model}, {kind}"


def feeds(sender: Node, receiver: Node, shape: ModelShape | None) -> bool:
    """Whether `sender`'s output is a term of `receiver`'s input in the residual stream."""
    if sender.kind == "logits" or receiver.kind == "embed":
        return False
    if sender.kind == "embed" or receiver.kind == "logits":
        return True
    if sender.layer < receiver.layer:
        return True
    parallel = shape is not None and shape.parallel_attn_mlp
    return sender.layer == receiver.layer and sender.kind == "head" and receiver.kind == "mlp" and not parallel


@lru_cache(maxsize=8)
def all_edges(shape: ModelShape) -> tuple[Edge, ...]:
    """Every edge of the model, without positions, in canonical order (`Edge.sort_key`):
    each receiver input (q, k and v of heads; under grouped-query attention one k and
    one v per key/value group, `ModelShape.port`) from each sender that feeds it.

    Cached per shape: GPT-2 small has 32,491 edges and sorting them costs ~40 ms.
    """
    nodes = shape.all_nodes()
    edges = [Edge(s, r, ch) for r in nodes if r.is_receiver for s in nodes
             if s.is_sender and feeds(s, r, shape) for ch in (("q", "k", "v") if r.is_head else (None,))
             if shape.is_port(r, ch)]
    return tuple(sorted(edges, key=Edge.sort_key))
