"""tests/hf_models.py: the tiny Hugging Face checkpoints save and load back offline, exactly,
with their tokenizers, and exercise what they are meant to (sliding windows, soft-caps,
random norms); the IOI vocabulary tokenizes every stdlib IOI prompt."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from circuitlang.eval.tasks.stdlib import ioi, ioi_data, ioi_prompts
from tests.hf_models import (
    BOS_ID,
    DEFAULT_WORDS,
    FAMILIES,
    IOI_WORDS,
    MAX_POSITIONS,
    SLIDING_WINDOW,
    UNK_ID,
    bpe_word_tokenizer,
    build_model,
    load_model,
    save_model,
    word_tokenizer,
)

SENTENCE = "When Mary and John went to the store, John gave a drink to Mary. Then the cat sat on the mat."
EXPECTED_ARCHITECTURE = {"gpt2": "GPT2LMHeadModel", "neox": "GPTNeoXForCausalLM", "llama": "LlamaForCausalLM",
                         "qwen2": "Qwen2ForCausalLM", "gemma2": "Gemma2ForCausalLM", "gemma3": "Gemma3ForCausalLM"}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


def _ids(n: int = 20, vocab: int = len(DEFAULT_WORDS), seed: int = 1) -> torch.Tensor:
    return torch.randint(4, 4 + vocab, (2, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_saved_directory_loads_back_offline_with_the_same_logits(family, tmp_path):
    directory = save_model(family, tmp_path / "model")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in directory.iterdir()}
    config = json.loads((directory / "config.json").read_text())
    assert config["architectures"] == [EXPECTED_ARCHITECTURE[family]]
    if family == "gpt2":
        assert config["n_ctx"] == config["n_positions"] == MAX_POSITIONS  # TransformerLens 3.9 reads n_ctx

    original, tokenizer = build_model(family)
    loaded, loaded_tokenizer = load_model(directory)
    assert loaded.config._attn_implementation == "eager"
    ids = loaded_tokenizer(SENTENCE, return_tensors="pt").input_ids
    assert ids.shape[1] > SLIDING_WINDOW and UNK_ID not in ids
    assert ids[0].tolist() == tokenizer(SENTENCE)["input_ids"]
    assert torch.equal(_logits(original, ids), _logits(loaded, ids))
    batch = _ids()
    assert torch.equal(_logits(original, batch), _logits(loaded, batch))

    assert loaded_tokenizer.decode(ids[0]) == SENTENCE
    assert (loaded_tokenizer.bos_token_id, loaded_tokenizer.eos_token_id, loaded_tokenizer.pad_token_id) == (1, 2, 3)
    assert loaded_tokenizer.unk_token == "<unk>"
    assert len(loaded_tokenizer) == loaded.config.vocab_size
    assert loaded_tokenizer("<bos>When Mary")["input_ids"][0] == BOS_ID  # TransformerLens prepends BOS as text


def test_models_are_deterministic_and_not_tiny():
    a, _ = build_model("llama", seed=3)
    b, _ = build_model("llama", seed=3)
    c, _ = build_model("llama", seed=4)
    ids = _ids()
    assert torch.equal(_logits(a, ids), _logits(b, ids))
    assert not torch.allclose(_logits(a, ids), _logits(c, ids))
    norm = a.model.layers[0].input_layernorm.weight
    assert norm.std() > 0.1 and (norm - 1).abs().mean() > 0.1  # random norm weights
    with torch.no_grad():
        pattern = a(ids, output_attentions=True).attentions[0]
    assert pattern[..., -1, :].max() > 0.3  # far from uniform (1/20) at the last position


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_sliding_window_is_exercised(family):
    """With a sequence longer than the window, the local layers change the logits, and
    only at positions that have more than SLIDING_WINDOW tokens to look at."""
    n = 3 * SLIDING_WINDOW
    local, _ = build_model(family)
    assert {"sliding_attention", "full_attention"} <= set(local.config.layer_types)
    # A window as long as the context: same layer types (gemma3's rope bases differ by type), no locality.
    everywhere, _ = build_model(family, sliding_window=MAX_POSITIONS)
    ids = _ids(n)
    windowed, full = _logits(local, ids), _logits(everywhere, ids)
    assert torch.allclose(windowed[:, :SLIDING_WINDOW], full[:, :SLIDING_WINDOW], atol=1e-6)
    assert (windowed[:, SLIDING_WINDOW:] - full[:, SLIDING_WINDOW:]).abs().amax(-1).min() > 1e-3


def test_gemma2_soft_caps_bite():
    model, _ = build_model("gemma2")
    ids = _ids()
    logits = _logits(model, ids)
    assert logits.abs().max() < model.config.final_logit_softcapping
    uncapped, _ = build_model("gemma2", attn_logit_softcapping=None)
    assert (_logits(uncapped, ids) - logits).abs().max() > 1e-2


@pytest.mark.parametrize("make", [word_tokenizer, bpe_word_tokenizer], ids=["wordlevel", "qwen2-bpe"])
def test_names_are_one_token_with_or_without_a_leading_space(make):
    tokenizer = make(IOI_WORDS)
    for name in ioi_data()["names"]:
        (with_space,), (bare,) = tokenizer(" " + name)["input_ids"], tokenizer(name)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(bare) == name
        if make is word_tokenizer:
            assert with_space == bare  # the Whitespace pre-tokenizer drops the space


def test_ioi_words_cover_every_template():
    vocab = set(word_tokenizer(IOI_WORDS).get_vocab())
    data = ioi_data()
    for template in data["templates"]:
        for slot in ("[S]", "[IO]", "[PLACE]", "[OBJECT]"):
            template = template.replace(slot, "X")
        words = template.replace(",", " , ").replace(".", " . ").split()
        assert set(words) - {"X"} <= vocab, template
    assert set(data["places"]) | set(data["objects"]) | set(data["names"]) <= vocab


class _TokenizerBackend:
    """What the IOI generator reads of a model, from a Hugging Face tokenizer."""

    has_tokenizer = True
    prepends_bos = True
    n_ctx = MAX_POSITIONS

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def to_tokens(self, text: str, prepend_bos: bool) -> list[int]:
        return [BOS_ID] * prepend_bos + self.tokenizer(text)["input_ids"]


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_ioi_generator_tokenizes_every_prompt_of_a_saved_ioi_model(family, tmp_path):
    _, tokenizer = load_model(save_model(family, tmp_path / "model", words=IOI_WORDS))
    data = ioi(_TokenizerBackend(tokenizer), n=60, seed=0)  # all 15 templates, both orders, all names checked
    for tokens in (data.clean, data.corrupt):
        assert UNK_ID not in tokens and (tokens[:, 0] == BOS_ID).all()
    assert data.clean.shape[1] <= MAX_POSITIONS
    assert len({int(t) for t in data.answer}) > 20  # many names, each one token
    first = ioi_prompts(1, seed=0)[0]
    assert tokenizer.decode(data.clean[0, 1:]).startswith(first.clean)  # right-padding repeats the last token


def test_rejects_words_that_are_not_one_token():
    with pytest.raises(ValueError):
        word_tokenizer(["two words"])
    with pytest.raises(ValueError):
        word_tokenizer(["store."])
    assert word_tokenizer(["store", "."])("store.")["input_ids"] == [4, 5]
