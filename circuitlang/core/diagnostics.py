"""Diagnostics: the registry of stable codes and the `Diagnostic` value every stage returns.

Stages collect `list[Diagnostic]`; only the top-level API raises (`CircuitError`).
Every code lives in `CODES` and is documented in docs/diagnostics.md (a test keeps the
two in step). Rendering lives in `present/diagnostic_text.py`.

>>> d = Diagnostic("E201", "layer 12 does not exist in gpt2 (layers 0-11)", NO_SPAN)
>>> d.severity
'error'
"""

from __future__ import annotations

import difflib
import functools
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .errors import CircuitlangError
from .spans import NO_SPAN, Span  # noqa: F401 - NO_SPAN: for callers (and the doctest)

# code -> (severity, short title). The title is what docs/diagnostics.md documents.
CODES: dict[str, tuple[str, str]] = {
    # E0xx: reading the file
    "E001": ("error", "file cannot be read"),
    "E002": ("error", "file is not valid UTF-8 text"),
    "E003": ("error", "file is binary"),
    "E004": ("error", "file is too large"),
    "W005": ("warning", "file is empty"),
    # E1xx: syntax
    "E101": ("error", "unexpected character"),
    "E102": ("error", "unexpected token"),
    "E103": ("error", "unexpected end of file"),
    "E104": ("error", "malformed component"),
    "E105": ("error", "unknown channel"),
    "E106": ("error", "duplicate model declaration"),
    "E107": ("error", "reserved name"),
    "E108": ("error", "invalid string escape"),
    "E109": ("error", "number out of range"),
    "E110": ("error", "expression nested too deeply"),
    # E2xx: the model's shape and the direction of edges
    "E201": ("error", "layer out of range"),
    "E202": ("error", "head out of range"),
    "E203": ("error", "unknown model"),
    "E204": ("error", "channel on a component that is not a head"),
    "E205": ("error", "edge goes backwards"),
    "E206": ("error", "edge into `embed` or out of `logits`"),
    "E207": ("error", "edge statement yields no edges"),
    "E208": ("error", "circuits from different models"),
    "E209": ("error", "model has no MLPs"),
    "E210": ("error", "model checkpoint cannot be read"),
    "E211": ("error", "channel on an edge's source"),
    "E212": ("error", "wildcard without a model"),
    "W213": ("warning", "no model declared"),
    "W214": ("warning", "key/value input shared by a head group (grouped-query attention)"),
    "E215": ("error", "--model has another shape than the file's model"),
    # E3xx: names, imports and composition
    "E301": ("error", "unknown name"),
    "E302": ("error", "duplicate definition"),
    "E303": ("error", "import not found"),
    "E304": ("error", "import cycle"),
    "E305": ("error", "wrong kind of name"),
    "E306": ("error", "wrong number of arguments"),
    "E307": ("error", "circuit refers to itself"),
    "W309": ("warning", "unused import"),
    "W310": ("warning", "unused parameter"),
    "W311": ("warning", "node with no path to `logits`"),
    "W312": ("warning", "node no path from `embed` feeds"),
    "E313": ("error", "node not in circuit"),
    "E314": ("error", "definitions nested too deeply"),
    "E315": ("error", "imports nested too deeply"),
    "E316": ("error", "too many components to enumerate"),
    # E4xx: tasks and checks
    "E401": ("error", "unknown setting"),
    "E402": ("error", "invalid setting value"),
    "E403": ("error", "unknown expectation"),
    "E404": ("error", "invalid bound"),
    "E405": ("error", "position not defined by the task"),
    "E406": ("error", "missing setting"),
    "E407": ("error", "duplicate setting"),
    "E408": ("error", "unknown option"),
    # W5xx: circuit contents
    "W501": ("warning", "empty circuit"),
    "W502": ("warning", "duplicate edge"),
    "W503": ("warning", "node without edges in an edge-level circuit"),
    "W504": ("warning", "subject not in circuit"),
    # E6xx: interop (graph JSON of EAP-IG and MIB, read by `circ import`, written by `circ export`)
    "E601": ("error", "invalid JSON"),
    "E602": ("error", "not an EAP-IG/MIB graph"),
    "E603": ("error", "unknown node in graph JSON"),
    "E604": ("error", "malformed edge name"),
    "E605": ("error", "edge cannot exist in the model"),
    "E606": ("error", "cfg does not match the model"),
    "E607": ("error", "model cannot be determined"),
    "E608": ("error", "circuit has positions"),
    "W609": ("warning", "positions dropped"),
    "W610": ("warning", "neuron masks ignored"),
    "E611": ("error", "no scores to rank"),
    "E612": ("error", "score sum is not finite"),
}


@dataclass(frozen=True)
class Related:
    """A secondary location shown with a diagnostic ("first defined here")."""

    message: str
    span: Span


@dataclass(frozen=True)
class Diagnostic:
    """One finding: a stable code, a message, where, and optional help."""

    code: str
    message: str
    span: Span
    label: str = ""
    help: str | None = None
    related: tuple[Related, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"diagnostic code {self.code} is not registered")

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple:
        return (self.span.path, self.span.line, self.span.column, self.code, self.message)


class CircuitError(CircuitlangError):
    """Raised by the top-level API when a file has errors; carries the diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.is_error] or diagnostics
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first.span}: {first.code} {first.message}{more}", first.help)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt word, as a help line, or None.

    The suggestion is difflib's `get_close_matches(word, candidates, n=1, cutoff=0.6)`,
    without its cost of a full comparison per candidate (1,000 misspelt names in a scope
    of 1,000 took a minute): each candidate's characters shared with the word (difflib's
    `quick_ratio`, an upper bound on the score) come from an index of the candidates kept
    between calls, and candidates are then compared in full best bound first, stopping
    once no bound left can reach the best score, so the answer is the same. Time per
    call is bounded by `_MAX_CANDIDATES` and `_MAX_FULL_RATIOS`.
    """
    best = _suggest(word, _Pool.of(tuple(dict.fromkeys(itertools.islice(candidates, _MAX_CANDIDATES)))))
    return f"did you mean `{best}`?" if best is not None else None


# did_you_mean's bounds: how many names it looks at, how many it compares in full, and
# the longest word it looks for.
# Ordinary scopes stay far inside both; past them a suggestion may be missed, but the
# time of one call stays bounded whatever the names.
_MAX_CANDIDATES = 5_000
_MAX_FULL_RATIOS = 100
_MAX_WORD = 100  # a longer "name" is no misspelling; full comparisons grow with its square
_CUTOFF = 0.6


@functools.lru_cache(maxsize=4096)
def _suggest(word: str, pool: "_Pool") -> str | None:
    """Memoised: resolving and lowering both report an unknown name, with the same scope."""
    return pool.closest(word)


@dataclass(frozen=True, eq=False)
class _Pool:
    """Candidate names with an index from each character to (candidate, count). Pools
    compare by identity: `of` returns the same pool for the same names, so `_suggest`'s
    cache keys stay small."""

    names: tuple[str, ...]
    postings: Mapping[str, tuple[tuple[int, int], ...]]

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def of(names: tuple[str, ...]) -> "_Pool":
        postings: dict[str, list[tuple[int, int]]] = {}
        for i, name in enumerate(names):
            for ch, n in Counter(name).items():
                postings.setdefault(ch, []).append((i, n))
        return _Pool(names, {ch: tuple(p) for ch, p in postings.items()})

    def closest(self, word: str) -> str | None:
        """The candidate difflib would pick: highest ratio >= 0.6, ties to the greatest name."""
        if len(word) > _MAX_WORD:
            return None
        if not word:  # nothing to index by; only an empty name can match
            return "" if "" in self.names else None
        shared = [0] * len(self.names)
        for ch, n in Counter(word).items():
            for i, m in self.postings.get(ch, ()):
                shared[i] += n if n < m else m
        # 2 * shared / (len(word) + len(name)) >= 0.6 needs shared > 0.3 * len(word) at least.
        floor = int(0.3 * len(word))
        bounded = []
        for i in [i for i, count in enumerate(shared) if count > floor]:
            name = self.names[i]
            bound = _ratio(shared[i], len(word) + len(name))
            if bound >= _CUTOFF:
                bounded.append((bound, name))
        bounded.sort(reverse=True)
        return _best_ratio(word, bounded[:_MAX_FULL_RATIOS])


def _best_ratio(word: str, bounded: list[tuple[float, str]]) -> str | None:
    """The best of (upper bound, name) pairs sorted best first, by difflib's full ratio."""
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(word)  # as get_close_matches does: the candidate is `a`, the word `b`
    best: tuple[float, str] | None = None
    for bound, name in bounded:
        if best is not None and bound < best[0]:
            break  # no later candidate can score higher, or tie it
        matcher.set_seq1(name)
        score = matcher.ratio()
        if score >= _CUTOFF and (best is None or (score, name) > best):
            best = (score, name)
    return best[1] if best is not None else None


def _ratio(matches: int, length: int) -> float:
    """difflib's ratio formula (the same float, so cut-offs agree exactly)."""
    return 2.0 * matches / length if length else 1.0


def unique_sorted(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Drop exact repeats (a motif body reached twice) and order by location."""
    seen: set[tuple] = set()
    out: list[Diagnostic] = []
    for d in diagnostics:
        key = (d.code, d.message, d.span)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return sorted(out, key=Diagnostic.sort_key)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)
