"""Tiny random Hugging Face checkpoints, saved as a user's model directory would look.

`save_model(family, directory)` writes `config.json`, `model.safetensors`,
`generation_config.json`, `tokenizer.json` and `tokenizer_config.json` with
`save_pretrained`, for one of the architectures in `FAMILIES` (gpt2, neox, llama, qwen2,
gemma2, gemma3), shrunk to 2-3 layers and d_model 32-64 with a word-level tokenizer
(`word_tokenizer`; for qwen2 a byte-level BPE one, `bpe_word_tokenizer`, because
transformers 5 loads any qwen2 tokenizer as `Qwen2Tokenizer`). The directory loads back
offline with `AutoModelForCausalLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)`,
attention "eager" (from config.json).

TransformerLens 3.9 (`get_pretrained_model_config(str(dir))` + `get_pretrained_state_dict`)
loads gpt2, neox, llama and qwen2 from such a directory but not gemma2/gemma3 (its Gemma
configs exist only for official names), and it picks the architecture from the path
itself when the path contains "llama" or "gemma": save into a directory whose path has
neither word (pytest's tmp_path holds the test's name). Its GPT-2 state dict lacks
`unembed.b_U` (use `fill_missing_keys`). TransformerLens 4's
`TransformerBridge.boot_transformers(str(dir))` loads all six.

The weights are random and not small (matrices with std 0.2, norm weights and biases
jittered around their defaults), so attention patterns are far from uniform and a
mistake in the handling of any norm, bias, scale, soft-cap or sliding window changes
the logits. `IOI_WORDS` is the vocabulary of the stdlib IOI prompts
(stdlib/gpt2/ioi_templates.json): a `gpt2` model saved with `words=IOI_WORDS` tokenizes
every IOI prompt with no `<unk>` and every name as one token, with or without the
leading space.

Nothing here downloads: configs are built in code, the tokenizer from a word list.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch

SPECIAL_TOKENS = ("<unk>", "<bos>", "<eos>", "<pad>")  # ids 0, 1, 2, 3
UNK_ID, BOS_ID, EOS_ID, PAD_ID = range(4)
MAX_POSITIONS = 64
SLIDING_WINDOW = 4  # gemma2/gemma3 local layers see this many tokens (the query included)
WEIGHT_STD = 0.2  # matrices; 1-D parameters get their default plus WEIGHT_STD noise
PUNCTUATION = (",", ".", "?", "!")

# The Whitespace pre-tokenizer splits on \w+ and runs of other non-space characters.
_WORD = re.compile(r"\w+|[^\w\s]+")

DEFAULT_WORDS: tuple[str, ...] = tuple(dict.fromkeys("""
    the a an and or but to of in on at from with for by is was are were be has had have
    do does did not it he she they we I you his her their my your this that there here
    then when while after before so as went go goes gave give gives took take said says
    saw see sees sat sit ran run likes liked found find wanted want made make
    cat dog bird mouse fish cow horse mat hat box ball tree house park store school garden
    book apple cake door table chair road river day night morning
    big small red blue green old new happy sad good bad first last one two three four five
    drink ring gift letter Mary John Alice Bob Tom Anna The A When Then After While
    """.split() + list(PUNCTUATION)))  # noqa: SIM905


def _words_of(text: str) -> list[str]:
    """The tokens the tokenizer's pre-tokenizer makes of `text` (words and punctuation)."""
    return _WORD.findall(text)


def ioi_file() -> Path:
    """stdlib/gpt2/ioi_templates.json, found as `circuitlang.lang.resolve.stdlib_root` finds
    it ($CIRCUITLANG_STDLIB, else the repository's stdlib/), without importing circuitlang."""
    override = os.environ.get("CIRCUITLANG_STDLIB")
    root = Path(override) if override else Path(__file__).resolve().parents[1] / "stdlib"
    return root / "gpt2" / "ioi_templates.json"


@cache
def _ioi_words() -> tuple[str, ...]:
    data = json.loads(ioi_file().read_text(encoding="utf-8"))
    words: list[str] = []
    for template in data["templates"]:
        for slot in ("[S]", "[IO]", "[PLACE]", "[OBJECT]"):
            template = template.replace(slot, " ")
        words += _words_of(template)
    words += list(data["names"]) + list(data["places"]) + list(data["objects"]) + list(PUNCTUATION)
    return tuple(dict.fromkeys(words))


IOI_WORDS: tuple[str, ...] = _ioi_words()


def word_tokenizer(words: Any = DEFAULT_WORDS, model_max_length: int = MAX_POSITIONS):
    """A word-level `PreTrainedTokenizerFast` over `words` (deduplicated, in order) after
    the special tokens <unk> (0), <bos> (1), <eos> (2), <pad> (3).

    The pre-tokenizer is `Whitespace` (\\w+ or a run of punctuation; spaces are dropped),
    so a leading space does not matter: " Mary" and "Mary" are the same one token, as the
    IOI generator needs (it checks that " " + name is one token). Punctuation is a token
    of its own ("store." is "store", "."). Nothing is added around a text (no automatic
    BOS, like GPT-2's tokenizer). `decode` joins with spaces and removes the space before
    punctuation (clean_up_tokenization_spaces), so a sentence written with single spaces
    round-trips. Unknown words become <unk>.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for word in [*SPECIAL_TOKENS, *words]:
        if not isinstance(word, str) or not word or _words_of(word) != [word] and word not in SPECIAL_TOKENS:
            raise ValueError(f"{word!r} is not one word or one run of punctuation")
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>", pad_token="<pad>", clean_up_tokenization_spaces=True,
                                   model_max_length=model_max_length)


def _bpe_merges(forms: list[str], alphabet: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary and merge list under which each of `forms` (byte-level
    strings) is one token: merges are appended, lowest priority last, until BPE leaves each
    form whole. Appending never breaks a form already whole: a new merge only ever applies
    once no earlier one does, and a whole form has no pair left."""
    vocab = {c: i for i, c in enumerate(alphabet)}
    ranks: dict[tuple[str, str], int] = {}
    for form in forms:
        while len(pieces := _bpe(form, ranks)) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(ranks)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
    return vocab, list(ranks)


def _bpe(text: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Plain BPE of one pre-token: merge the best-ranked adjacent pair (all its occurrences,
    left to right) until no pair has a rank."""
    pieces = list(text)
    while len(pieces) > 1:
        best = min(pairwise(pieces), key=lambda pair: ranks.get(pair, len(ranks)))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(pieces):
            if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == best:
                merged.append(pieces[i] + pieces[i + 1])
                i += 2
            else:
                merged.append(pieces[i])
                i += 1
        pieces = merged
    return pieces


def bpe_word_tokenizer(words: Any = DEFAULT_WORDS, model_max_length: int = MAX_POSITIONS):
    """A Qwen2 (byte-level BPE) tokenizer under which each of `words`, with and without a
    leading space, is one token: for the `qwen2` family, because transformers 5's
    AutoTokenizer always loads a qwen2 model's tokenizer as `Qwen2Tokenizer` (qwen2 is in
    its MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS), which keeps the vocabulary and merges
    of tokenizer.json but imposes its own pre-tokenizer, so a WordLevel tokenizer.json
    would come back as nonsense.

    Ids: <unk> 0, <bos> 1, <eos> 2, <pad> 3, then the 256 byte symbols, then merges. A
    leading space matters here, as in GPT-2's tokenizer: " Mary" and "Mary" are two
    different single tokens. There is no <unk> in use: an unknown word splits into pieces.
    Nothing is added around a text. Decoding is exact.
    """
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    words = list(dict.fromkeys(words))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    forms = [byte_level.pre_tokenize_str(prefix + w)[0][0] for w in words for prefix in ("", " ")]
    vocab, merges = _bpe_merges(forms, sorted(pre_tokenizers.ByteLevel.alphabet()))
    vocab = {**{t: i for i, t in enumerate(SPECIAL_TOKENS)}, **{t: i + len(SPECIAL_TOKENS) for t, i in vocab.items()}}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
                               pad_token="<pad>", model_max_length=model_max_length)
    bad = [w for w in words for prefix in ("", " ") if len(tokenizer(prefix + w)["input_ids"]) != 1]
    if bad:
        raise ValueError(f"words that are not one token under the Qwen2 pre-tokenizer: {bad[:5]}")
    return tokenizer


# ---------------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------------

def _ids() -> dict[str, int]:
    return {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID}


def _gpt2(vocab: int):
    from transformers import GPT2Config

    # n_inner stays None (4 * n_embd = 128): TransformerLens 3.9 assumes d_mlp = 4 * d_model for GPT-2.
    # n_ctx is written explicitly: transformers 5 no longer writes it, TransformerLens 3.9 reads it.
    return GPT2Config(vocab_size=vocab, n_positions=MAX_POSITIONS, n_ctx=MAX_POSITIONS, n_embd=32, n_layer=2,
                      n_head=4, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      **_ids())


def _neox(vocab: int):
    from transformers import GPTNeoXConfig

    # d_head 16, rotary on the first 4 dimensions of each head (rotary_pct 0.25).
    return GPTNeoXConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, hidden_act="gelu", rotary_pct=0.25, rotary_emb_base=10000,
                         max_position_embeddings=MAX_POSITIONS, use_parallel_residual=True,
                         tie_word_embeddings=False, hidden_dropout=0.0, attention_dropout=0.0, **_ids())


def _llama(vocab: int):
    from transformers import LlamaConfig

    # Grouped-query attention: 4 query heads share 2 key/value heads.
    return LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, hidden_act="silu",
                       max_position_embeddings=MAX_POSITIONS, rms_norm_eps=1e-5, rope_theta=10000.0,
                       tie_word_embeddings=False, **_ids())


def _qwen2(vocab: int):
    from transformers import Qwen2Config

    # Grouped-query attention, with biases on q, k and v (Qwen2 always has them).
    return Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, hidden_act="silu",
                       max_position_embeddings=MAX_POSITIONS, rms_norm_eps=1e-6, rope_theta=10000.0,
                       use_sliding_window=False, tie_word_embeddings=False, **_ids())


def _gemma2(vocab: int):
    from transformers import Gemma2Config

    # Layer 0 local (sliding window of SLIDING_WINDOW), layer 1 global. The soft-caps are
    # small enough to bite with these weights, and query_pre_attn_scalar (24) differs from
    # head_dim (16) so a scale taken from the wrong one shows.
    return Gemma2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                        hidden_activation="gelu_pytorch_tanh", max_position_embeddings=MAX_POSITIONS,
                        rms_norm_eps=1e-6, rope_theta=10000.0, query_pre_attn_scalar=24,
                        sliding_window=SLIDING_WINDOW, layer_types=["sliding_attention", "full_attention"],
                        attn_logit_softcapping=5.0, final_logit_softcapping=4.0, tie_word_embeddings=True,
                        **_ids())


def _gemma3(vocab: int):
    from transformers import Gemma3TextConfig

    # Layers 0 and 2 local, layer 1 global; q/k norms; different rope bases for local and global.
    return Gemma3TextConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                            hidden_activation="gelu_pytorch_tanh", max_position_embeddings=MAX_POSITIONS,
                            rms_norm_eps=1e-6, query_pre_attn_scalar=24, sliding_window=SLIDING_WINDOW,
                            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                            rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                             "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}},
                            tie_word_embeddings=True, **_ids())


FAMILIES: dict[str, Callable[[int], Any]] = {
    "gpt2": _gpt2, "neox": _neox, "llama": _llama, "qwen2": _qwen2, "gemma2": _gemma2, "gemma3": _gemma3,
}


def make_config(family: str, vocab_size: int, **overrides: Any):
    """The `transformers` config of `family` for a vocabulary of `vocab_size`, eager attention
    (exact; what Gemma 2's attention soft-cap needs); `overrides` are set on it afterwards
    (e.g. sliding_window=MAX_POSITIONS, attn_logit_softcapping=None)."""
    if family not in FAMILIES:
        raise KeyError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    config = FAMILIES[family](vocab_size)
    config._attn_implementation = "eager"
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def randomize(model: torch.nn.Module, seed: int = 0, std: float = WEIGHT_STD) -> torch.nn.Module:
    """Overwrite every parameter, deterministically given `seed`: matrices (embeddings
    included) ~ N(0, std); 1-D parameters (norm weights, biases) = their current value +
    N(0, std), so norm weights are no longer all one (or all zero, Gemma's 1 + w)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32).to(param.dtype) * std
            if param.dim() >= 2:
                param.copy_(noise)
            else:
                param.add_(noise)
    return model


def tokenizer_for(family: str, words: Any = None):
    """The tokenizer `save_model` saves with a `family` model: `word_tokenizer(words)`, or
    for qwen2 `bpe_word_tokenizer(words)` (see there why)."""
    build = bpe_word_tokenizer if family == "qwen2" else word_tokenizer
    return build(DEFAULT_WORDS if words is None else words)


def build_model(family: str, words: Any = None, seed: int = 0, **overrides: Any):
    """(model, tokenizer): a random float32 `family` model in eval mode, not saved;
    `overrides` are config fields (see make_config)."""
    from transformers import AutoModelForCausalLM

    tokenizer = tokenizer_for(family, words)
    config = make_config(family, len(tokenizer), **overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    randomize(model, seed)
    model.eval()
    return model, tokenizer


def save_model(family: str, directory: Path, words: Any = None, seed: int = 0) -> Path:
    """Save a random `family` model (float32, safetensors) and its word-level tokenizer
    over `words` (default DEFAULT_WORDS) into `directory` with `save_pretrained`; returns it.

    Deterministic given `seed`. config.json names the architecture (e.g.
    "GPT2LMHeadModel"), the special token ids and attn_implementation "eager"."""
    directory = Path(directory)
    model, tokenizer = build_model(family, words, seed)
    model.config.attn_implementation = "eager"  # written to config.json; from_pretrained then uses it
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    _check_config(family, directory / "config.json")
    return directory


def _check_config(family: str, path: Path) -> None:
    """Fill in what transformers 5 leaves out of config.json that TransformerLens 3.9 reads."""
    fields = json.loads(path.read_text(encoding="utf-8"))
    if family == "gpt2" and "n_ctx" not in fields:
        fields["n_ctx"] = fields["n_positions"]
        path.write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_model(directory: Path):
    """(model, tokenizer) from a saved directory, offline, float32, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, local_files_only=True)
    model.eval()
    return model, AutoTokenizer.from_pretrained(directory, local_files_only=True)
