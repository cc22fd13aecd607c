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
>>> y.clean.replace(f"17{y.yy:02d} ", "1701 ") == y.corrupt
True
>>> int(y.answer) - y.yy, y.yy - int(y.wrong), y.clean.split(" ")[y.words["YY"]] == f"17{y.yy:02d}"
(1, 1, True)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

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
    "When Mary and John went to the store, John gave a drink to"; BABA: "When John and
    Mary ...", both when `order` is "mixed"), IO and S (two names), a place, an object, and
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
class YearPrompt:
    """One Greater-Than example: "The {noun} lasted from the year {century}{YY} to the year
    {century}" and the same with YY = 01. The answer is YY+1 and the wrong token YY-1 (both
    two digits, no space: they follow the century token). `words`: YY is the word holding
    the start year, END the last word.
    """

    clean: str
    corrupt: str
    noun: str
    century: int
    yy: int
    words: Mapping[str, int] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        return f"{self.yy + 1:02d}"

    @property
    def wrong(self) -> str:
        return f"{self.yy - 1:02d}"


def greater_than_prompts(n: int = 256, seed: int = 0, *, century: int = 17,
                         years: Sequence[int] | None = None) -> list[YearPrompt]:
    """`n` year-span prompts as text, deterministic given `seed`; no tokenizer needed.

    Start years YY come from `years` (default 2..98), balanced as in the authors' dataset:
    a seeded shuffle of the list, repeated as often as `n` needs. Nouns are drawn from the
    shipped list.
    """
    if not 10 <= century <= 99:
        raise TaskError(f"`century` must be two digits (10-99), not {century}")
    pool = list(range(2, 99) if years is None else years)
    if not pool or any(not 2 <= y <= 98 for y in pool):
        raise TaskError("start years YY must lie in 2..98 (YY-1 and YY+1 are two-digit years)")
    nouns = greater_than_data()["nouns"]
    rng = random.Random(seed)
    order: list[int] = []
    out = []
    for _ in range(n):
        if not order:
            order = pool[:]
            rng.shuffle(order)
        yy = order.pop()
        noun = rng.choice(nouns)

        def text(start: int) -> str:
            return f"The {noun} lasted from the year {century}{start:02d} to the year {century}"

        clean = text(yy)
        words = clean.split(" ")
        out.append(YearPrompt(clean, text(1), noun, century, yy,
                              {"YY": words.index(f"{century}{yy:02d}"), "END": len(words) - 1}))
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
    """IOI prompts (Wang et al. 2022) tokenized for `model`: clean "When Mary and John went
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


def greater_than(model: "Backend", *, n: int = 256, seed: int = 0, century: int = 17) -> TaskData:
    """Year-span prompts (Hanna et al. 2023) tokenized for `model`: clean "The war lasted
    from the year 1732 to the year 17", corrupt the same with 1701; answer "33" (YY+1),
    wrong "31" (YY-1): the logit difference is the authors' cutoff sharpness on logits.

    Start years are those YY in 2..98 for which " {century}YY" is the two tokens
    " {century}" and "YY" and YY-1, YY+1 are single tokens (as the authors filter them).
    Positions: YY (the start year's second token) and END (the last token, " {century}").
    BOS is prepended when the model does so by default (the authors prepended
    "<|endoftext|> ", with a space).
    """
    _need_tokenizer(model, "greater_than")
    _whole(n=n, seed=seed, century=century)
    century = int(century)
    bos = model.prepends_bos

    def two_digits(yy: int) -> int | None:
        return _one_token(model, f"{yy:02d}")

    def splits(yy: int) -> bool:
        return _encode(model, f" {century}{yy:02d}") == [_one_token(model, f" {century}"), two_digits(yy)]

    if _one_token(model, f" {century}") is None or not splits(1):
        raise TaskError(f"this tokenizer does not split \" {century}01\" into \" {century}\" and \"01\"")
    years = [yy for yy in range(2, 99)
             if splits(yy) and two_digits(yy - 1) is not None and two_digits(yy + 1) is not None]
    if not years:
        raise TaskError(f"no start year {century}YY splits into \" {century}\" and \"YY\" for this tokenizer")
    rows = []
    for i, p in enumerate(greater_than_prompts(int(n), int(seed), century=century, years=years)):
        clean, corrupt = _encode(model, p.clean, bos), _encode(model, p.corrupt, bos)
        if len(clean) != len(corrupt):
            raise TaskError(f"greater_than example {i}: the clean prompt has {len(clean)} tokens, "
                            f"the corrupted one {len(corrupt)}")
        start = p.clean.index(f" {century}{p.yy:02d} ")  # the prefix through " {century}" of the start year
        yy_at = len(_encode(model, p.clean[: start + 1 + len(str(century))], bos))
        if clean[yy_at] != two_digits(p.yy) or corrupt[yy_at] != two_digits(1):
            raise TaskError(f"greater_than example {i}: position YY = {yy_at} does not hold {p.yy:02d}")
        answer, wrong = two_digits(p.yy + 1), two_digits(p.yy - 1)
        assert answer is not None and wrong is not None
        rows.append((clean, corrupt, answer, wrong, {"YY": yy_at, "END": len(clean) - 1}))
    return _build(model, rows, "greater_than")


GENERATORS = {"ioi": ioi, "greater_than": greater_than}
