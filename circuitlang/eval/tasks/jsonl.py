"""Task data from a JSONL file, one example per line.

Each line is an object with `clean` and `corrupt` (token id lists, or strings when the
model has a tokenizer), `answer` and `wrong` (a token id or a string that is one
token), and optional `positions` (`{"S1": 3, "END": -1}`; END defaults to the last
token of `clean`). Prompts of different lengths are right-padded: a causal model's
readout position never sees the padding. Every problem is a TaskError naming the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..backends.base import Backend
from .base import TaskData, TaskError

HELP_SCHEMA = ('each line is an object like {"clean": [0, 5, 7], "corrupt": [0, 6, 7], "answer": 5, "wrong": 6} '
               '(docs/evaluation.md, "JSONL files")')


def _tokens(value: Any, model: "Backend | None", what: str, path: str, line: int) -> list[int]:
    if isinstance(value, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        tokens = value
    elif isinstance(value, str):
        if model is None or not model.has_tokenizer:
            raise TaskError(f"`{what}` is text but the model has no tokenizer", path, line,
                            "give token ids as a list of integers")
        tokens = model.to_tokens(value, prepend_bos=model.prepends_bos)
    else:
        raise TaskError(f"`{what}` must be a list of token ids or a string", path, line)
    if not tokens:
        raise TaskError(f"`{what}` is empty", path, line)
    if model is not None and any(not 0 <= t < model.d_vocab for t in tokens):
        raise TaskError(f"`{what}` has a token id outside the vocabulary (0-{model.d_vocab - 1})", path, line)
    return tokens


def _answer(value: Any, model: "Backend | None", what: str, path: str, line: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        token = value
    elif isinstance(value, str):
        if model is None or not model.has_tokenizer:
            raise TaskError(f"`{what}` is text but the model has no tokenizer", path, line)
        ids = model.to_tokens(value, prepend_bos=False)
        if len(ids) != 1:
            raise TaskError(f"`{what}` {value!r} is {len(ids)} tokens; answers must be a single token", path, line,
                            "a leading space often makes a word one token, e.g. \" Mary\"")
        token = ids[0]
    else:
        raise TaskError(f"`{what}` must be a token id or a one-token string", path, line)
    if model is not None and not 0 <= token < model.d_vocab:
        raise TaskError(f"`{what}` {token} is outside the vocabulary", path, line)
    return token


def load_jsonl(path: Path, model: "Backend | None" = None, name: str = "") -> TaskData:
    """Read a JSONL task file; every problem is a TaskError naming the line."""
    shown = str(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise TaskError(f"cannot read {shown}: {err}", shown) from None
    rows: list[tuple[list[int], list[int], int, int, dict[str, int]]] = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise TaskError(f"invalid JSON: {err.msg}", shown, number) from None
        except RecursionError:
            raise TaskError("invalid example: JSON nested too deeply", shown, number,
                            HELP_SCHEMA) from None
        except ValueError as err:  # e.g. an integer with thousands of digits
            raise TaskError(f"invalid JSON: {err}", shown, number) from None
        if not isinstance(obj, dict):
            raise TaskError("each line must be a JSON object", shown, number)
        missing = [k for k in ("clean", "corrupt", "answer", "wrong") if k not in obj]
        if missing:
            raise TaskError(f"missing field(s): {', '.join(missing)}", shown, number, HELP_SCHEMA)
        clean = _tokens(obj["clean"], model, "clean", shown, number)
        corrupt = _tokens(obj["corrupt"], model, "corrupt", shown, number)
        if len(clean) != len(corrupt):
            raise TaskError(f"clean has {len(clean)} tokens but corrupt has {len(corrupt)}", shown, number,
                            "corrupted prompts must line up token for token with the clean ones")
        positions = obj.get("positions", {})
        if not isinstance(positions, dict) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                      for v in positions.values()):
            raise TaskError("`positions` must map names to token indices", shown, number)
        resolved = {}
        for key, index in positions.items():
            absolute = index + len(clean) if index < 0 else index
            if not 0 <= absolute < len(clean):
                raise TaskError(f"position {key}={index} is outside the {len(clean)} tokens", shown, number)
            resolved[key] = absolute
        resolved.setdefault("END", len(clean) - 1)
        rows.append((clean, corrupt, _answer(obj["answer"], model, "answer", shown, number),
                     _answer(obj["wrong"], model, "wrong", shown, number), resolved))
    if not rows:
        raise TaskError("the file has no examples", shown, help=HELP_SCHEMA)
    names = set(rows[0][4])
    for i, row in enumerate(rows):
        if set(row[4]) != names:
            raise TaskError(f"example {i + 1} names positions {sorted(row[4])}, the first names {sorted(names)}",
                            shown)
    width = max(len(r[0]) for r in rows)
    pad = lambda seq: seq + [seq[-1]] * (width - len(seq))  # noqa: E731 - causal: padding is never read
    return TaskData(
        clean=torch.tensor([pad(r[0]) for r in rows]),
        corrupt=torch.tensor([pad(r[1]) for r in rows]),
        answer=torch.tensor([r[2] for r in rows]),
        wrong=torch.tensor([r[3] for r in rows]),
        positions={k: torch.tensor([r[4][k] for r in rows]) for k in names},
        name=name or path.stem,
        lengths=torch.tensor([len(r[0]) for r in rows]),
    )
