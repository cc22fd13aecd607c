"""Attention-pattern evidence for head roles: how much of its attention a head puts
where a previous-token, induction or duplicate-token head would.

`attention_patterns` recomputes every head's attention pattern [N, P, P] (query x key)
on a clean run from the backend's pieces (the residual stream entering each layer is
read with hooks; the norm, q/k projections, q/k norms, rotary and `Attention.scores`
do the rest, as the fast engine does). `Role` says, for each role, which key positions
it should attend to from each query position:

- PREVIOUS_TOKEN: the position just before the query (key = query - 1);
- INDUCTION: the token after an earlier occurrence of the current token (key = j + 1
  for every j < query with tokens[j] == tokens[query]);
- DUPLICATE_TOKEN: the earlier occurrences themselves (key = j < query with
  tokens[j] == tokens[query]).

`role_scores` gives each head the mean attention mass (0..1) on a role's targets, over
the examples and the query positions where the role has a target (BOS, position 0, is
left out by default: `role_scores`). A head that behaves as the role says scores near 1;
uniform attention (query q sees q + 1 keys) scores about (number of targets) / (q + 1).

Limits. A score is evidence about where a head *attends*, not about what it *writes*:
a head can attend to the right token and copy nothing useful (its OV circuit is not
looked at), and whether the model relies on it is what faithfulness measures, not
this. The score depends on the tokens: on sequences without repeats INDUCTION and
DUPLICATE_TOKEN have no defined query positions (the score is NaN); where a token
occurs several times earlier, the mass on all its targets together counts. Roles can
share targets (in a run of one repeated token the previous position is also an
earlier copy), so a high score for one role does not rule out another. Targets are
defined on token identity only: two different tokens a head treats alike do not count.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Iterable, Mapping

import torch

from ..core.errors import CircuitlangError
from ..core.graph import Node
from .backends.base import Backend, Hook, Site, SiteKind, Unsupported


class PatternError(CircuitlangError):
    """Bad input to the attention-pattern functions (shapes, layers)."""


# -- patterns -------------------------------------------------------------------------


def attention_patterns(backend: Backend, tokens: torch.Tensor,
                       layers: Iterable[int] | None = None) -> dict[Node, torch.Tensor]:
    """Each head's attention pattern [N, P, P] (query x key, rows sum to 1) on a plain run
    on `tokens` [N, P], for the heads of `layers` (all layers when None).

    One hooked run captures the stream entering each layer (the EMBED site for layer 0,
    RESID_PRE after); the patterns are then computed from the backend's pieces, all
    heads of a layer at once. A model whose `unsupported()` names anything is refused
    (Unsupported): its pieces may not reproduce the model's attention.
    """
    if tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise PatternError(f"tokens must be [N, P] with N, P >= 1, not {tuple(tokens.shape)}")
    problems = backend.unsupported()
    if problems:
        raise Unsupported(", ".join(problems))
    n_layers = backend.shape.n_layers
    wanted = sorted(set(range(n_layers) if layers is None else layers))
    bad = [layer for layer in wanted if not 0 <= layer < n_layers]
    if bad:
        raise PatternError(f"layer {bad[0]} is out of range: the model has {n_layers} layers")
    sites = {layer: Site(SiteKind.EMBED) if layer == 0 else Site(SiteKind.RESID_PRE, layer) for layer in wanted}
    captured: dict[Site, torch.Tensor] = {}

    def keep(site: Site) -> Hook:
        def hook(act: torch.Tensor) -> None:
            captured[site] = act.detach()
        return hook

    patterns: dict[Node, torch.Tensor] = {}
    with torch.no_grad():
        if wanted:
            backend.run_with_hooks(tokens.to(backend.device), [(site, keep(site)) for site in sites.values()],
                                   stop_at_final=True)
        for layer in wanted:
            pattern = _layer_pattern(backend, layer, captured[sites[layer]])
            patterns.update((Node.attn(layer, head), pattern[:, head]) for head in range(pattern.shape[1]))
    return patterns


def _layer_pattern(backend: Backend, layer: int, x: torch.Tensor) -> torch.Tensor:
    """The patterns [N, H, P, P] of every head of `layer` from the stream entering it [N, P, d]."""
    pieces = backend.layers[layer]
    attn = pieces.attn
    normed = pieces.attn_norm.apply(x)

    def project(channel: str) -> torch.Tensor:  # [N, H, P, d_head]
        out = torch.einsum("npd,hde->nhpe", normed, attn.weight(channel))
        return out + attn.bias(channel)[None, :, None, :]

    q, k = attn.query_key(project("q"), project("k"))
    return torch.softmax(attn.scores(q, k), dim=-1)


# -- roles ----------------------------------------------------------------------------


class Role(Enum):
    """A head role with an attention signature: which keys it attends to from each query."""

    PREVIOUS_TOKEN = "previous-token"
    INDUCTION = "induction"
    DUPLICATE_TOKEN = "duplicate-token"

    @property
    def target_text(self) -> str:
        """Where the role attends, in words (for reports)."""
        return _TARGET_TEXT[self]

    def targets(self, tokens: torch.Tensor) -> torch.Tensor:
        """Boolean [N, P, P]: [n, q, k] is True when key k is a target of query q."""
        if tokens.dim() != 2:
            raise PatternError(f"tokens must be [N, P], not {tuple(tokens.shape)}")
        n, p = tokens.shape
        query = torch.arange(p, device=tokens.device)[:, None]
        key = torch.arange(p, device=tokens.device)[None, :]
        if self is Role.PREVIOUS_TOKEN:
            return (key == query - 1).expand(n, p, p).clone()
        # earlier[n, q, j]: j < q and tokens[j] == tokens[q]
        earlier = (tokens[:, :, None] == tokens[:, None, :]) & (key < query)
        if self is Role.DUPLICATE_TOKEN:
            return earlier
        # induction: key k = j + 1 for an earlier occurrence j, i.e. earlier[n, q, k - 1]
        shifted = torch.zeros_like(earlier)
        shifted[:, :, 1:] = earlier[:, :, :-1]
        return shifted

    def defined(self, tokens: torch.Tensor) -> torch.Tensor:
        """Boolean [N, P]: the query positions with at least one target."""
        return self.targets(tokens).any(dim=-1)


_TARGET_TEXT = {
    Role.PREVIOUS_TOKEN: "the previous position (-1)",
    Role.INDUCTION: "the token after an earlier occurrence of the current token",
    Role.DUPLICATE_TOKEN: "earlier occurrences of the current token",
}


def role_scores(patterns: Mapping[Node, torch.Tensor], tokens: torch.Tensor, role: Role,
                skip_first: bool = True, *, lengths: torch.Tensor | None = None,
                at: torch.Tensor | None = None) -> dict[Node, float]:
    """Each head's mean attention mass (0..1) on `role`'s targets, pooled over every
    (example, query position) where the role has a target; NaN where there is none.

    `skip_first` leaves the first position (BOS) out, as a query and as a target: many
    heads park their attention on BOS when they have nothing to do, so a BOS target
    would credit an idle head (at query 1 the previous token is BOS, and a BOS token
    repeated later has BOS as its duplicate), and at query 0 BOS is the only key, no
    choice at all. A query whose only target is BOS is then not scored. `lengths` [N] (a
    right-padded task's prompt lengths) leaves the padding out as queries; `at` [N] (a
    named position such as the task's END) scores one query position per example.
    """
    if tokens.dim() != 2:
        raise PatternError(f"tokens must be [N, P], not {tuple(tokens.shape)}")
    n, p = tokens.shape
    targets = role.targets(tokens)
    position = torch.arange(p, device=tokens.device)[None, :]
    if skip_first:
        targets[:, :, 0] = False
    rows = targets.any(dim=-1)  # [N, P]
    if skip_first:
        rows = rows & (position > 0)
    if lengths is not None:
        rows = rows & (position < lengths.to(tokens.device)[:, None])
    if at is not None:
        rows = rows & (position == at.to(tokens.device)[:, None])
    count = int(rows.sum())
    scores: dict[Node, float] = {}
    for node, pattern in patterns.items():
        if pattern.shape != (n, p, p):
            raise PatternError(f"the pattern of {node} is {tuple(pattern.shape)}, not {(n, p, p)} as the tokens")
        if count == 0:
            scores[node] = math.nan
            continue
        mass = (pattern.float() * targets.to(pattern.device)).sum(dim=-1)  # [N, P]
        scores[node] = float(mass[rows.to(pattern.device)].sum()) / count
    return scores


# -- parameter names --------------------------------------------------------------------

# The first word of a parameter name that names each role.
_FIRST_WORDS: dict[str, Role] = {
    "prev": Role.PREVIOUS_TOKEN, "previous": Role.PREVIOUS_TOKEN,
    "ind": Role.INDUCTION, "induction": Role.INDUCTION,
    "dup": Role.DUPLICATE_TOKEN, "duplicate": Role.DUPLICATE_TOKEN,
}


def role_for(parameter_name: str) -> Role | None:
    """The role a motif parameter's name asks for, or None.

    The name is lower-cased and split on "_"; it names a role when its first word is
    one of that role's words (prev / previous, ind / induction, dup / duplicate),
    whatever follows: `prev`, `prev_token`, `Previous_Token_Head`, `induction_heads`
    and `dup_token` all match. Matching is by whole words, so `indirect`, `prevent`,
    `dup2` and `duplicates` name no role (a prefix of letters would misread the
    first two), and a word later in the name never counts (`name_mover_prev` is None).

    >>> role_for("prev_token")
    <Role.PREVIOUS_TOKEN: 'previous-token'>
    >>> role_for("Induction_Heads").name
    'INDUCTION'
    >>> role_for("indirect") is None
    True
    """
    words = [word for word in parameter_name.lower().split("_") if word]
    return _FIRST_WORDS.get(words[0]) if words else None
