"""Text-prompt task generators for the GPT-2 circuits of the standard library.

`ioi` (Wang et al. 2022; stdlib/gpt2/ioi.circ) and `greater_than` (Hanna et al. 2023;
stdlib/gpt2/greater_than.circ) write their prompts as text, from word lists shipped beside
the circuits (stdlib/gpt2/ioi_templates.json, stdlib/gpt2/greater_than_nouns.json), and
tokenize them with the model's tokenizer to find the token positions the circuits name.
The text comes from pure functions that need no model, `ioi_prompts(n, seed)` and
`greater_than_prompts(n, seed)`, with word-level positions (indices into
`prompt.split(" ")`); the generators turn words into token indices and check that each
named position holds the token it should. A model without a tokenizer is a TaskError.

Listed in `registry.GENERATORS` with the zoo's generators.

>>> p = ioi_prompts(1, seed=0)[0]
>>> words = p.clean.split(" ")
>>> words[p.words["IO"]] == p.io and words[p.words["S1"]] == words[p.words["S2"]] == p.s
True
>>> c = p.corrupt.split(" ")
>>> (c[p.words["IO"]], c[p.words["S1"]], c[p.words["S2"]]) == p.corrupt_names
True
>>> y = greater_than_prompts(1, seed=0)[0]
>>> y.clean.replace(f"{y.year} ", f"{y.century}01 ") == y.corrupt
True
>>> int(y.answer) - y.yy, y.yy - int(y.wrong), y.clean.split(" ")[y.words["YY"]] == str(y.year)
(1, 1, True)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch

from ...lang.resolve import stdlib_root
from .base import TaskData, TaskError

if TYPE_CHECKING:
    from ..backends.base import Backend

IOI_FILE = "gpt2/ioi_templates.json"
GREATER_THAN_FILE = "gpt2/greater_than_nouns.json"
ORDERS = ("mixed", "ABBA", "BABA")


# ---------------------------------------------------------------------------------
# Shipped word lists
# ---------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _load(relative: str) -> dict[str, Any]:
    path = stdlib_root() / relative
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise TaskError(f"cannot read {path}: {err}", str(path)) from None
    if not isinstance(data, dict):
        raise TaskError(f"{path} must hold a JSON object", str(path))
    return data


def ioi_data() -> dict[str, Any]:
    """The IOI word lists (stdlib/gpt2/ioi_templates.json): templates, names, places, objects."""
    data = _load(IOI_FILE)
    for key in ("templates", "names", "places", "objects"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise TaskError(f"{IOI_FILE} needs a non-empty list `{key}`")
    return data


def greater_than_data() -> dict[str, Any]:
    """The Greater-Than word lists (stdlib/gpt2/greater_than_nouns.json): the template's nouns."""
    data = _load(GREATER_THAN_FILE)
    if not isinstance(data.get("nouns"), list) or not data["nouns"]:
        raise TaskError(f"{GREATER_THAN_FILE} needs a non-empty list `nouns`")
    return data


# ---------------------------------------------------------------------------------
# IOI: text prompts
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IOIPrompt:
    """One IOI example as text.

    `clean` names IO once and S twice (S1, S2) and ends before the answer, " IO";
    `corrupt` is the same sentence with three other, distinct names at IO, S1 and S2
    (`corrupt_names`, the paper's ABC distribution). `words` holds word indices into
    `clean.split(" ")` (the same for `corrupt`): IO, S1, S2 and END (the last word).
    """

    clean: str
    corrupt: str
    io: str
    s: str
    corrupt_names: tuple[str, str, str]
    template: int
    order: str  # "ABBA" (IO named first) or "BABA" (S first)
    words: Mapping[str, int] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        return " " + self.io

    @property
    def wrong(self) -> str:
        return " " + self.s


def _slots(template: str) -> tuple[list[str], int, int, int]:
    """Template words and the word indices of [IO], the first [S] and the second [S]."""
    words = template.split(" ")
    io = [i for i, w in enumerate(words) if w == "[IO]"]
    s = [i for i, w in enumerate(words) if w == "[S]"]
    if len(io) != 1 or len(s) != 2 or any(("[IO]" in w or "[S]" in w) and w not in ("[IO]", "[S]") for w in words):
        raise TaskError(f"IOI template {template!r} needs one [IO] and two [S], each a word of its own")
    if min(io[0], s[0]) == 0:
        raise TaskError(f"IOI template {template!r} must not start with a name")
    return words, io[0], s[0], s[1]


def ioi_prompts(n: int = 256, seed: int = 0, *, order: str = "mixed", templates: int = 0,
                names: Sequence[str] | None = None) -> list[IOIPrompt]:
    """`n` IOI prompts as text, deterministic given `seed`; no tokenizer needed.

    Each draws a template (of the first `templates` in the file; 0 = all), an order (ABBA:
    "After Mary and John went to the store, John gave a drink to"; BABA: "After John and
    Mary went to the store, John gave a drink to"; both when `order` is "mixed"), IO and S
    (two names), a place, an object, and
    for the corrupted prompt three further names, distinct from each other and from IO
    and S. `names` overrides the file's list (the generator passes the names that are one
    token for the model).
    """
    if order not in ORDERS:
        raise TaskError(f"`order` must be one of {', '.join(ORDERS)}, not {order!r}")
    data = ioi_data()
    pool = list(data["names"] if names is None else names)
    if len(set(pool)) < 5:
        raise TaskError(f"IOI prompts need at least 5 distinct names, got {len(set(pool))}")
    all_templates = data["templates"]
    if not 0 <= templates <= len(all_templates):
        raise TaskError(f"`templates` must be between 0 (all) and {len(all_templates)}, not {templates}")
    chosen = all_templates[:templates] if templates else all_templates
    parsed = [_slots(t) for t in chosen]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = rng.randrange(len(parsed))
        words, io_w, s1_w, s2_w = parsed[t]
        this_order = rng.choice(("ABBA", "BABA")) if order == "mixed" else order
        if this_order == "ABBA":  # the file's templates name S first: swap S1 and IO
            io_w, s1_w = s1_w, io_w
        io, s = rng.sample(pool, 2)
        others = [x for x in dict.fromkeys(pool) if x not in (io, s)]
        abc = tuple(rng.sample(others, 3))
        place, obj = rng.choice(data["places"]), rng.choice(data["objects"])

        def fill(at_io: str, at_s1: str, at_s2: str) -> str:
            filled = [w.replace("[PLACE]", place).replace("[OBJECT]", obj) for w in words]
            filled[io_w], filled[s1_w], filled[s2_w] = at_io, at_s1, at_s2
            return " ".join(filled)

        out.append(IOIPrompt(fill(io, s, s), fill(*abc), io, s, abc, t, this_order,  # type: ignore[arg-type]
                             {"IO": io_w, "S1": s1_w, "S2": s2_w, "END": len(words) - 1}))
    return out


# ---------------------------------------------------------------------------------
# Greater-Than: text prompts
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GreaterThanSource:
    """Whose year prompts: the centuries, the years tested in each, the sampling and the text.

    `centuries`: the two-digit centuries CC drawn from; `tested`: the YY of each century whose
    year CCYY is kept when it splits into the tokens " CC" and "YY" (then each century's
    first and last such year are dropped, as both sources do); `balanced`: the k-th prompt
    takes the k-th start YY in turn (02, 03, ..., 98, 02, ...) and a random year with it,
    else every prompt draws a year uniformly; `ending`: the text after the start year, with
    `{century}` for CC.
    """

    centuries: range
    tested: range
    balanced: bool
    ending: str


GREATER_THAN_SOURCES = {
    # Hanna et al.: circuit_discovery.py line 46, utils.get_valid_years(tokenizer, 1000, 1900)
    # (every year 1000-1899 tested, each century's first and last valid year dropped), and
    # dataset.YearDataset(balanced=True) with generate_real_sentence's text.
    "hanna": GreaterThanSource(range(10, 19), range(0, 100), True, "to the year {century}"),
    # ACDC: acdc/greaterthan/utils.py lines 85-93 (centuries 11-17, years CC02-CC98 tested,
    # all_success[1:-1]) and get_year_data (lines 140-165: uniform draws; the text ends
    # "to CC", without "the year").
    "acdc": GreaterThanSource(range(11, 18), range(2, 99), False, "to {century}"),
}


@dataclass(frozen=True)
class YearPrompt:
    """One Greater-Than example: "The {noun} lasted from the year {CC}{YY} " followed by the
    source's ending ("to the year {CC}" for Hanna et al., "to {CC}" for ACDC), and the same
    with YY = 01. The answer is YY+1 and the wrong token YY-1 (both two digits, no space:
    they follow the century token). `words`: YY is the word holding the start year, END the
    last word.
    """

    clean: str
    corrupt: str
    noun: str
    century: int
    yy: int
    words: Mapping[str, int] = field(default_factory=dict)
    source: str = "hanna"

    @property
    def year(self) -> int:
        return self.century * 100 + self.yy

    @property
    def answer(self) -> str:
        return f"{self.yy + 1:02d}"

    @property
    def wrong(self) -> str:
        return f"{self.yy - 1:02d}"


def _source(source: str) -> GreaterThanSource:
    if source not in GREATER_THAN_SOURCES:
        raise TaskError(f"`source` must be one of {', '.join(GREATER_THAN_SOURCES)}, not {source!r}")
    return GREATER_THAN_SOURCES[source]


def _century(century: int | None) -> int | None:
    if century is not None and not 10 <= century <= 99:
        raise TaskError(f"`century` must be two digits (10-99), not {century}")
    return century


def greater_than_years(source: str = "hanna", *, century: int | None = None,
                       splits: Callable[[int], bool] | None = None) -> list[int]:
    """The start years (e.g. 1732) that `source`'s prompts are drawn from, ascending.

    Per century (the source's, or only `century`), the source's tested years that `splits`
    accepts (the tokenizer writes " CCYY" as " CC" and "YY"; None: every year does), less
    the first and the last of them, as both sources drop them; then only YY in 02..98 (YY-1
    and YY+1 must be two-digit years). Without a tokenizer, Hanna et al.'s are CC02..CC98 of
    centuries 10-18 and ACDC's CC03..CC97 of centuries 11-17:

    >>> years = greater_than_years()
    >>> len(years), years[0], years[-1]
    (873, 1002, 1898)
    >>> acdc = greater_than_years("acdc")
    >>> len(acdc), acdc[0], acdc[-1]
    (665, 1103, 1797)
    >>> greater_than_years(century=17, splits=lambda year: year % 100 not in (0, 40))[:3]
    [1702, 1703, 1704]
    """
    spec = _source(source)
    centuries = [_century(century)] if century is not None else list(spec.centuries)
    out: list[int] = []
    for cc in centuries:
        assert cc is not None
        valid = [cc * 100 + yy for yy in spec.tested if splits is None or splits(cc * 100 + yy)]
        out += [year for year in valid[1:-1] if 2 <= year % 100 <= 98]
    return out


def greater_than_prompts(n: int = 256, seed: int = 0, *, source: str = "hanna", century: int | None = None,
                         years: Sequence[int] | None = None) -> list[YearPrompt]:
    """`n` year-span prompts as text, deterministic given `seed`; no tokenizer needed.

    `source` chooses whose distribution (GREATER_THAN_SOURCES): "hanna" (default, the
    authors': "The dispute lasted from the year 1732 to the year 17", start years from
    1000-1899, the k-th prompt's YY the k-th of 02..98 in turn) or "acdc" (ACDC's: "The
    dispute lasted from the year 1732 to 17", start years from centuries 11-17, drawn
    uniformly). `century` keeps one century. `years` replaces the start years (full years,
    e.g. [1732, 1845]; the generator passes those the tokenizer splits as the sources
    require); by default every year is taken to split (greater_than_years). Nouns are drawn
    uniformly from the shipped list, which is the authors' (and ACDC's) list. The random
    draws are Python's `random.Random(seed)`, not the sources' own generators: the same
    distribution, not the same prompts.
    """
    spec = _source(source)
    century = _century(century)
    pool = sorted(set(greater_than_years(source, century=century) if years is None else years))
    if century is not None:
        pool = [y for y in pool if y // 100 == century]
    if any(not 1000 <= y <= 9999 or not 2 <= y % 100 <= 98 for y in pool):
        raise TaskError("start years must be four digits with YY in 02..98 (YY-1 and YY+1 are two-digit years)")
    if not pool:
        raise TaskError("no start year to draw from" + (f" in century {century}" if century is not None else ""))
    nouns = greater_than_data()["nouns"]
    by_yy: dict[int, list[int]] = {}
    for year in pool:
        by_yy.setdefault(year % 100, []).append(year)
    cycle = sorted(by_yy)
    rng = random.Random(seed)
    out = []
    for k in range(n):
        year = rng.choice(by_yy[cycle[k % len(cycle)]]) if spec.balanced else rng.choice(pool)
        noun = rng.choice(nouns)
        cc, yy = divmod(year, 100)
        ending = spec.ending.format(century=cc)

        def text(start: int) -> str:
            return f"The {noun} lasted from the year {cc}{start:02d} {ending}"

        clean = text(yy)
        words = clean.split(" ")
        out.append(YearPrompt(clean, text(1), noun, cc, yy,
                              {"YY": words.index(str(year)), "END": len(words) - 1}, source))
    return out


# ---------------------------------------------------------------------------------
# Tokenizing: words -> token positions
# ---------------------------------------------------------------------------------


def _need_tokenizer(model: "Backend", generator: str) -> None:
    if not model.has_tokenizer:
        raise TaskError(f"generator `{generator}` writes its prompts as text and needs the model's tokenizer; "
                        "this model has none",
                        help="use a pretrained model with its tokenizer (`model gpt2`), or give token ids in a "
                             "JSONL file (`data \"examples.jsonl\"`)")


def _whole(**values: object) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise TaskError(f"`{key}` must be a whole number, not {value!r}")


def _encode(model: "Backend", text: str, bos: bool = False) -> list[int]:
    return model.to_tokens(text, prepend_bos=bos)


def _one_token(model: "Backend", text: str) -> int | None:
    ids = _encode(model, text)
    return ids[0] if len(ids) == 1 else None


def _pad(rows: list[list[int]]) -> torch.Tensor:
    """Right-pad with each row's last token: a causal model's END never reads the padding."""
    width = max(len(r) for r in rows)
    return torch.tensor([r + [r[-1]] * (width - len(r)) for r in rows], dtype=torch.long)


def _build(model: "Backend", rows: list[tuple[list[int], list[int], int, int, dict[str, int]]],
           name: str) -> TaskData:
    width = max(len(r[0]) for r in rows)
    if width > model.n_ctx:
        raise TaskError(f"`{name}` prompts have up to {width} tokens; the model's context is {model.n_ctx}")
    keys = rows[0][4].keys()
    return TaskData(_pad([r[0] for r in rows]), _pad([r[1] for r in rows]),
                    torch.tensor([r[2] for r in rows]), torch.tensor([r[3] for r in rows]),
                    {k: torch.tensor([r[4][k] for r in rows]) for k in keys}, name)


def ioi(model: "Backend", *, n: int = 256, seed: int = 0, order: str = "mixed",
        templates: int = 0) -> TaskData:
    """IOI prompts (Wang et al. 2022) tokenized for `model`: clean "After Mary and John went
    to the store, John gave a drink to", corrupt the same template with three other names
    (ABC), answer " Mary" (IO), wrong " John" (S).

    Positions (token indices, BOS counted when the model prepends one): IO, S1, S2 (the
    name tokens) and END (the last token, " to"); S1+1 is written as an offset in the
    circuit. Names that are not a single token with a leading space for this tokenizer are
    skipped. `order`: "mixed" (default), "ABBA" or "BABA"; `templates`: use the first k of
    the shipped templates (0 = all 15; ACDC uses the first alone, in ABBA order). Prompts of
    different templates differ in length and are right-padded with their last token.
    """
    _need_tokenizer(model, "ioi")
    _whole(n=n, seed=seed, templates=templates)
    names = [x for x in ioi_data()["names"] if _one_token(model, " " + x) is not None]
    if len(names) < 5:
        raise TaskError(f"only {len(names)} of the IOI names are one token for this model's tokenizer; 5 are needed")
    prompts = ioi_prompts(int(n), int(seed), order=str(order), templates=int(templates), names=names)
    bos = model.prepends_bos
    rows = []
    for i, p in enumerate(prompts):
        clean, corrupt = _encode(model, p.clean, bos), _encode(model, p.corrupt, bos)
        if len(clean) != len(corrupt):
            raise TaskError(f"ioi example {i}: the clean prompt has {len(clean)} tokens, the ABC one {len(corrupt)}")
        words = p.clean.split(" ")
        positions = {k: len(_encode(model, " ".join(words[:w]), bos)) for k, w in p.words.items() if k != "END"}
        positions["END"] = len(clean) - 1
        expected = {"IO": (p.io, p.corrupt_names[0]), "S1": (p.s, p.corrupt_names[1]), "S2": (p.s, p.corrupt_names[2])}
        for key, (name_clean, name_corrupt) in expected.items():
            at = positions[key]
            if clean[at] != _one_token(model, " " + name_clean) or corrupt[at] != _one_token(model, " " + name_corrupt):
                raise TaskError(f"ioi example {i}: position {key} = {at} does not hold the name {name_clean!r} "
                                f"(the tokenizer split the prompt differently from its words)")
        answer, wrong = _one_token(model, p.answer), _one_token(model, p.wrong)
        assert answer is not None and wrong is not None  # names were filtered to single tokens
        rows.append((clean, corrupt, answer, wrong, positions))
    return _build(model, rows, "ioi")


def greater_than(model: "Backend", *, n: int = 256, seed: int = 0, source: str = "hanna",
                 century: int | None = None) -> TaskData:
    """Year-span prompts (Hanna et al. 2023) tokenized for `model`: clean "The dispute lasted
    from the year 1732 to the year 17", corrupt the same with 1701; answer "33" (YY+1),
    wrong "31" (YY-1): the logit difference is the authors' cutoff sharpness on logits.

    `source` = "hanna" (default) draws the authors' prompts (circuit_discovery.py, dataset.py):
    start years 1000-1899 whose " CCYY" is the tokens " CC" and "YY", less each century's
    first and last such year, balanced over YY (the k-th prompt's YY is the k-th of 02..98,
    its century drawn at random). `source` = "acdc" draws ACDC's (acdc/greaterthan/utils.py):
    centuries 11-17, years CC02-CC98 that split so, less each century's first and last,
    drawn uniformly, and the text ends "to 17" instead of "to the year 17". `century` keeps
    one century of the source's rule (`century = 17`: the paper's running example's).
    "Splits" is ACDC's test (the tokens of " CC" and of "YY"); Hanna et al. ask for two
    tokens, the second two characters long.

    What differs from the sources: the years must also have YY-1, YY+1 and the corrupted
    " CC01" as single tokens (the metric and the corruption need them; whether that removes
    any year for GPT-2 is not known here, its tokenizer is not available offline); a YY with
    no start year is skipped in the balanced cycle (the authors' code would fail on it); the
    random draws are Python's, seeded by `seed`, not the sources' (same distribution, other
    prompts); BOS is prepended when the model does so by default (the authors prepended
    "<|endoftext|> " with a space, ACDC none); answers are YY+1 against YY-1, not the
    sources' probability sums over all years. Positions: YY (the start year's second token)
    and END (the last token, " CC").
    """
    _need_tokenizer(model, "greater_than")
    _whole(n=n, seed=seed)
    if century is not None:
        _whole(century=century)
        century = int(century)
    source = str(source)
    bos = model.prepends_bos

    def two_digits(yy: int) -> int | None:
        return _one_token(model, f"{yy:02d}")

    centuries: dict[int, int | None] = {}

    def century_token(cc: int) -> int | None:
        if cc not in centuries:
            centuries[cc] = _one_token(model, f" {cc}")
        return centuries[cc]

    def splits(year: int) -> bool:
        first, second = century_token(year // 100), two_digits(year % 100)
        return first is not None and second is not None and _encode(model, f" {year}") == [first, second]

    years = [y for y in greater_than_years(source, century=century, splits=splits)
             if splits(y // 100 * 100 + 1) and two_digits(y % 100 - 1) is not None
             and two_digits(y % 100 + 1) is not None]
    if not years:
        raise TaskError(f"no start year of source {source!r}" + (f" in century {century}" if century else "")
                        + " splits into \" CC\" and \"YY\" for this tokenizer (with CC01, YY-1 and YY+1 as tokens)")
    rows = []
    for i, p in enumerate(greater_than_prompts(int(n), int(seed), source=source, century=century, years=years)):
        clean, corrupt = _encode(model, p.clean, bos), _encode(model, p.corrupt, bos)
        if len(clean) != len(corrupt):
            raise TaskError(f"greater_than example {i}: the clean prompt has {len(clean)} tokens, "
                            f"the corrupted one {len(corrupt)}")
        start = p.clean.index(f" {p.year} ")  # the prefix through " CC" of the start year
        yy_at = len(_encode(model, p.clean[: start + 1 + len(str(p.century))], bos))
        if clean[yy_at] != two_digits(p.yy) or corrupt[yy_at] != two_digits(1):
            raise TaskError(f"greater_than example {i}: position YY = {yy_at} does not hold {p.yy:02d}")
        answer, wrong = two_digits(p.yy + 1), two_digits(p.yy - 1)
        assert answer is not None and wrong is not None
        rows.append((clean, corrupt, answer, wrong, {"YY": yy_at, "END": len(clean) - 1}))
    return _build(model, rows, "greater_than")


GENERATORS = {"ioi": ioi, "greater_than": greater_than}
