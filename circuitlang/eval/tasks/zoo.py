"""Task generators for the zoo models (listed in `registry.GENERATORS`).

Each is `fn(model, *, n=256, seed=0, **kwargs) -> TaskData`, deterministic given `seed`
(a private `torch.Generator`; the global RNG is untouched). Corrupted prompts line up
token for token with the clean ones (same length, same named positions), and `wrong` is
the answer of the corrupted prompt, which always differs from the clean answer.

>>> from types import SimpleNamespace
>>> model = SimpleNamespace(d_vocab=32, n_ctx=32)
>>> data = induction(model, n=2, seq_len=8)
>>> data.clean.shape, int(data.positions["FIRST"][0]), int(data.positions["END"][0])
(torch.Size([2, 8]), 3, 7)
>>> bool((data.clean[:, 3] == data.clean[:, 7]).all() and (data.answer == data.clean[:, 4]).all())
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .base import TaskData, TaskError

if TYPE_CHECKING:
    from ..backends.base import Backend

BOS = 0


def _whole(**values: object) -> None:
    """Generator arguments that must be whole numbers (a .circ file may write `16.0`)."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise TaskError(f"`{key}` must be a whole number, not {value!r}")


def _check_len(model: "Backend", seq_len: int, least: int) -> None:
    if not least <= seq_len <= model.n_ctx:
        raise TaskError(f"seq_len must be between {least} and the model's n_ctx {model.n_ctx}, not {seq_len}")


def _distinct_rows(gen: torch.Generator, n: int, high: int, k: int, low: int = 1) -> torch.Tensor:
    """[n, k] tokens drawn without replacement from low..high-1 in each row."""
    return torch.rand(n, high - low, generator=gen).argsort(dim=1)[:, :k] + low


def induction(model: "Backend", *, n: int = 256, seed: int = 0, seq_len: int = 16) -> TaskData:
    """BOS, then A (seq_len // 2 distinct non-BOS tokens), then A again, cut so the
    sequence has `seq_len` tokens. At END (the last token) the answer is the token that
    followed the earlier occurrence of the current token. Corrupt: the same with another A.

    Positions: FIRST = the earlier occurrence of the END token, NEXT = FIRST + 1 (where the
    answer stands, the induction head's target), END = seq_len - 1.
    """
    _whole(n=n, seed=seed, seq_len=seq_len)
    n, seed, seq_len = int(n), int(seed), int(seq_len)
    _check_len(model, seq_len, 4)
    half = seq_len // 2
    tail = seq_len - 1 - half  # tokens of the repeat, 1 <= tail <= half
    if half > model.d_vocab - 1:
        raise TaskError(f"seq_len {seq_len} needs {half} distinct tokens; the model has {model.d_vocab - 1}")
    gen = torch.Generator().manual_seed(seed)

    def sequences() -> torch.Tensor:
        a = _distinct_rows(gen, n, model.d_vocab, half)
        return torch.cat([torch.full((n, 1), BOS), a, a[:, :tail]], dim=1)

    clean, corrupt = sequences(), sequences()
    nxt = tail + 1
    while True:  # the corrupted answer must differ from the clean one
        same = corrupt[:, nxt] == clean[:, nxt]
        if not same.any():
            break
        corrupt[same] = sequences()[same]
    index = lambda i: torch.full((n,), i)  # noqa: E731
    return TaskData(clean, corrupt, clean[:, nxt].clone(), corrupt[:, nxt].clone(),
                    {"FIRST": index(tail), "NEXT": index(nxt), "END": index(seq_len - 1)}, "induction")


def mod_sum(model: "Backend", *, n: int = 256, seed: int = 0, seq_len: int = 8,
            modulus: int = 5) -> TaskData:
    """BOS, a digit a, filler tokens, a digit b at END; the answer is the digit (a + b) mod
    `modulus`. Digit d is token 1 + d; fillers are the tokens after the digits. Corrupt:
    new a, b and fillers, with a different answer.

    Positions: A = 1 (the first digit), END = seq_len - 1 (the second digit).
    """
    _whole(n=n, seed=seed, seq_len=seq_len, modulus=modulus)
    n, seed, seq_len, modulus = int(n), int(seed), int(seq_len), int(modulus)
    _check_len(model, seq_len, 3)
    n_fill = model.d_vocab - 1 - modulus
    if modulus < 2 or n_fill < 1:
        raise TaskError(f"modulus {modulus} leaves no filler tokens in a vocabulary of {model.d_vocab}")
    gen = torch.Generator().manual_seed(seed)

    def sequences() -> torch.Tensor:
        digits = torch.randint(0, modulus, (n, 2), generator=gen)
        fill = torch.randint(1 + modulus, model.d_vocab, (n, seq_len - 3), generator=gen)
        return torch.cat([torch.full((n, 1), BOS), 1 + digits[:, :1], fill, 1 + digits[:, 1:]], dim=1)

    def answer(seq: torch.Tensor) -> torch.Tensor:
        return 1 + (seq[:, 1] - 1 + seq[:, -1] - 1) % modulus

    clean, corrupt = sequences(), sequences()
    while True:
        same = answer(corrupt) == answer(clean)
        if not same.any():
            break
        corrupt[same] = sequences()[same]
    return TaskData(clean, corrupt, answer(clean), answer(corrupt),
                    {"A": torch.full((n,), 1), "END": torch.full((n,), seq_len - 1)}, "mod_sum")


def random_tokens(model: "Backend", *, n: int = 256, seed: int = 0, seq_len: int = 16) -> TaskData:
    """Uniformly random clean and corrupt sequences and random distinct answer/wrong
    tokens: no circuit solves it; it is for timing and shape work (e.g. on gpt2-random)."""
    _whole(n=n, seed=seed, seq_len=seq_len)
    n, seed, seq_len = int(n), int(seed), int(seq_len)
    _check_len(model, seq_len, 1)
    vocab = model.d_vocab
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, vocab, (n, seq_len), generator=gen)
    corrupt = torch.randint(0, vocab, (n, seq_len), generator=gen)
    answer = torch.randint(0, vocab, (n,), generator=gen)
    wrong = (answer + torch.randint(1, vocab, (n,), generator=gen)) % vocab
    return TaskData(clean, corrupt, answer, wrong, {}, "random_tokens")


GENERATORS = {"induction": induction, "mod_sum": mod_sum, "random_tokens": random_tokens}
