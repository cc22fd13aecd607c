"""Model shapes without weights: the shipped table, Hugging Face config.json of each
model type, the local Hugging Face cache (offline), `circ models`, and `model` lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import circuitlang as cl
from circuitlang.cli import cli
from circuitlang.core.models import (
    ALIASES,
    KNOWN_SHAPES,
    ModelRef,
    ShapeError,
    aliases_of,
    cached_config,
    resolve_shape,
    shape_from_config,
)


def codes(result: cl.Compiled) -> list[str]:
    return [d.code for d in result.diagnostics]


def numbers(shape) -> tuple:
    return (shape.n_layers, shape.n_heads, shape.n_kv_heads, shape.d_model, shape.d_head, shape.parallel_attn_mlp)


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test sees an empty Hugging Face cache of its own, never the machine's."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


# ---------------------------------------------------------------------------------
# The shipped table
# ---------------------------------------------------------------------------------

# (name, layers, heads, kv heads, d_model, d_head, parallel attention + MLP)
MIB_MODELS = [
    ("gpt2", 12, 12, 12, 768, 64, False),
    ("Qwen/Qwen2.5-0.5B", 24, 14, 2, 896, 64, False),
    ("google/gemma-2-2b", 26, 8, 4, 2304, 256, False),
    ("meta-llama/Llama-3.1-8B", 32, 32, 8, 4096, 128, False),
]
OTHERS = [
    ("pythia-14m", 6, 4, 4, 128, 32, True),
    ("pythia-1b", 16, 8, 8, 2048, 256, True),
    ("pythia-12b", 36, 40, 40, 5120, 128, True),
    ("Qwen/Qwen2.5-7B", 28, 28, 4, 3584, 128, False),
    ("google/gemma-2-9b", 42, 16, 8, 3584, 256, False),
    ("meta-llama/Llama-3.2-1B", 16, 32, 8, 2048, 64, False),
    ("meta-llama/Llama-3.2-3B", 28, 24, 8, 3072, 128, False),
    ("allenai/OLMo-2-0425-1B", 16, 16, 16, 2048, 128, False),
    ("allenai/OLMo-2-1124-7B", 32, 32, 32, 4096, 128, False),
]


@pytest.mark.parametrize("name, layers, heads, kv, d_model, d_head, parallel", MIB_MODELS + OTHERS)
def test_named_models_resolve_statically(name: str, layers: int, heads: int, kv: int, d_model: int, d_head: int,
                                         parallel: bool) -> None:
    shape = resolve_shape(ModelRef(name))
    assert numbers(shape) == (layers, heads, kv, d_model, d_head, parallel)
    assert shape.source.startswith("shipped table: ")


@pytest.mark.parametrize("alias, name", [
    ("EleutherAI/pythia-1b", "pythia-1b"), ("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B"),
    ("gemma-2-2b", "google/gemma-2-2b"), ("llama-3.1-8b", "meta-llama/Llama-3.1-8B"),
    ("llama-3.2-3b", "meta-llama/Llama-3.2-3B"), ("olmo-2-1b", "allenai/OLMo-2-0425-1B"), ("gpt2-small", "gpt2"),
])
def test_aliases_name_the_same_shape(alias: str, name: str) -> None:
    assert resolve_shape(ModelRef(alias)) is KNOWN_SHAPES[name]
    assert alias in aliases_of(name)


def test_the_whole_pythia_suite_is_known_with_a_parallel_residual() -> None:
    for size in ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"):
        shape = KNOWN_SHAPES[f"pythia-{size}"]
        assert shape.parallel_attn_mlp and not shape.attn_only
        assert shape.n_heads * shape.d_head == shape.d_model
        assert ALIASES[f"EleutherAI/pythia-{size}"] == shape.name


def test_every_entry_is_consistent_and_says_where_it_comes_from() -> None:
    for name, shape in KNOWN_SHAPES.items():
        assert shape.name == name
        assert shape.n_heads % shape.n_kv_heads == 0, name
        assert shape.source.startswith(("shipped table: ", "zoo: ")), name
    for alias, target in ALIASES.items():
        assert target in KNOWN_SHAPES and alias not in KNOWN_SHAPES, alias


# ---------------------------------------------------------------------------------
# config.json: Hugging Face (by model_type) and HookedTransformerConfig
# ---------------------------------------------------------------------------------

# Trimmed copies of the models' own config.json (the fields a shape needs, and a few more).
QWEN_0_5B = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
             "intermediate_size": 4864, "num_attention_heads": 14, "num_hidden_layers": 24,
             "num_key_value_heads": 2, "tie_word_embeddings": True}
GEMMA_2_2B = {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "head_dim": 256,
              "hidden_size": 2304, "intermediate_size": 9216, "num_attention_heads": 8, "num_hidden_layers": 26,
              "num_key_value_heads": 4, "attn_logit_softcapping": 50.0, "sliding_window": 4096}
LLAMA_3_1_8B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
                "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
                "num_key_value_heads": 8, "rope_theta": 500000.0}
LLAMA_3_2_3B = {**LLAMA_3_1_8B, "head_dim": 128, "hidden_size": 3072, "intermediate_size": 8192,
                "num_attention_heads": 24, "num_hidden_layers": 28}
PYTHIA_1B = {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": 2048,
             "num_attention_heads": 8, "num_hidden_layers": 16, "rotary_pct": 0.25, "use_parallel_residual": True}
OLMO_2_1B = {"architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2", "hidden_size": 2048,
             "num_attention_heads": 16, "num_hidden_layers": 16, "num_key_value_heads": 16}
GPT2 = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768, "n_head": 12, "n_layer": 12,
        "n_positions": 1024}


@pytest.mark.parametrize("config, name", [
    (QWEN_0_5B, "Qwen/Qwen2.5-0.5B"), (GEMMA_2_2B, "google/gemma-2-2b"), (LLAMA_3_1_8B, "meta-llama/Llama-3.1-8B"),
    (LLAMA_3_2_3B, "meta-llama/Llama-3.2-3B"), (PYTHIA_1B, "pythia-1b"), (OLMO_2_1B, "allenai/OLMo-2-0425-1B"),
    (GPT2, "gpt2"),
], ids=lambda v: v if isinstance(v, str) else v["model_type"])
def test_a_models_own_config_json_gives_its_table_shape(config: dict, name: str) -> None:
    shape = shape_from_config(config, "dir")
    assert numbers(shape) == numbers(KNOWN_SHAPES[name])
    assert shape.source == f"Hugging Face config.json ({config['model_type']})"


@pytest.mark.parametrize("config, expected", [
    ({"model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 64}, (2, 4, 4, 64, 16, False)),
    ({"model_type": "gpt_neox", "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64},
     (2, 4, 4, 64, 16, True)),  # use_parallel_residual defaults to true
    ({"model_type": "gpt_neox", "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64,
      "use_parallel_residual": False}, (2, 4, 4, 64, 16, False)),
    ({"model_type": "llama", "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
      "hidden_size": 64, "head_dim": 16}, (3, 4, 2, 64, 16, False)),
    ({"model_type": "llama", "num_hidden_layers": 3, "num_attention_heads": 4, "hidden_size": 64},
     (3, 4, 4, 64, 16, False)),  # no num_key_value_heads: one per head; no head_dim: d_model / heads
    ({"model_type": "qwen2", "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
      "hidden_size": 32, "head_dim": None}, (2, 4, 1, 32, 8, False)),
    ({"model_type": "olmo2", "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
      "hidden_size": 64}, (2, 4, 4, 64, 16, False)),
    ({"model_type": "gemma", "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
      "hidden_size": 64}, (2, 4, 1, 64, 256, False)),  # Gemma's head_dim defaults to 256
    ({"model_type": "gemma2", "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "hidden_size": 64, "head_dim": 32}, (2, 4, 2, 64, 32, False)),
    ({"model_type": "gemma3_text", "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "hidden_size": 64, "head_dim": 16}, (2, 4, 2, 64, 16, False)),
], ids=lambda v: v["model_type"] if isinstance(v, dict) else None)
def test_hugging_face_config_of_each_model_type(config: dict, expected: tuple) -> None:
    shape = shape_from_config(config, "runs/my-model")
    assert numbers(shape) == expected
    assert shape.name == "runs/my-model" and not shape.attn_only
    assert shape.source == f"Hugging Face config.json ({config['model_type']})"


def test_multimodal_gemma3_reads_its_text_config() -> None:
    # As the Hub's google/gemma-3-4b-pt writes it: text_config leaves out what equals
    # Gemma3TextConfig's defaults (8 heads, 4 key/value heads, head_dim 256).
    config = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
              "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                              "num_hidden_layers": 34, "sliding_window": 1024},
              "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model", "num_hidden_layers": 27}}
    shape = shape_from_config(config, "gemma-3-4b")
    assert numbers(shape) == (34, 8, 4, 2560, 256, False)
    assert shape.source == "Hugging Face config.json (gemma3, text_config gemma3_text)"
    small = {"model_type": "gemma3", "text_config": {"num_hidden_layers": 2, "num_attention_heads": 4,
                                                     "num_key_value_heads": 1, "hidden_size": 32, "head_dim": 8}}
    assert numbers(shape_from_config(small, "tiny")) == (2, 4, 1, 32, 8, False)


def test_hooked_transformer_config_fields_still_read() -> None:
    shape = shape_from_config({"n_layers": 3, "n_heads": 2, "d_model": 16, "attn_only": True,
                               "n_key_value_heads": 1, "d_head": 4}, "ckpt")
    assert numbers(shape) == (3, 2, 1, 16, 4, False) and shape.attn_only
    assert shape.source == "checkpoint config.json (HookedTransformerConfig fields)"


@pytest.mark.parametrize("config, words", [
    ({"model_type": "llama", "num_attention_heads": 4, "hidden_size": 64}, ["`num_hidden_layers`"]),
    ({"model_type": "gemma2", "num_hidden_layers": 2}, ["`num_attention_heads`", "`hidden_size`"]),
    ({"model_type": "gpt2", "n_layer": 2, "n_head": "4", "n_embd": 64}, ["`n_head` (= \"4\")"]),
    ({"model_type": "gpt_neox", "num_hidden_layers": 0, "num_attention_heads": 4, "hidden_size": 64},
     ["`num_hidden_layers` (= 0)"]),
    ({"model_type": "qwen2", "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64,
      "num_key_value_heads": 3}, ["4 attention heads", "3 key/value heads"]),
    ({"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 3, "hidden_size": 64},
     ["not a multiple of 3 heads"]),
    ({"model_type": "mamba", "num_hidden_layers": 2}, ["`mamba`", "does not read"]),
    ({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text"}}, ["`num_hidden_layers`", "`hidden_size`"]),
    ({"n_layers": 2, "n_heads": 4}, ["`d_model`"]),
    ({"vocab_size": 10}, ["no `model_type`", "HookedTransformerConfig"]),
    ({"model_type": ["llama"], "num_hidden_layers": 2}, ["`model_type` that is not a string"]),
    ({"model_type": "llava", "text_config": {"model_type": ["x"]}}, ["`llava`"]),
], ids=["no-layers", "two-missing", "string", "zero", "kv-split", "d-model-split", "unknown-type",
        "empty-text-config", "hooked-incomplete", "neither", "type-not-a-string", "inner-type-not-a-string"])
def test_incomplete_or_unknown_configs_are_e210_naming_what_is_missing(config: dict, words: list[str]) -> None:
    with pytest.raises(ShapeError) as caught:
        shape_from_config(config, "runs/x")
    assert caught.value.code == "E210"
    for word in words:
        assert word in caught.value.message, caught.value.message


def test_config_json_as_transformers_save_pretrained_writes_it(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    small = {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 64,
             "intermediate_size": 128}
    made = {
        "gpt2": (transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64), (2, 4, 4, 64, 16, False)),
        "gpt_neox": (transformers.GPTNeoXConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=64,
                                                intermediate_size=128), (2, 4, 4, 64, 16, True)),
        "llama": (transformers.LlamaConfig(**small), (2, 4, 2, 64, 16, False)),
        "qwen2": (transformers.Qwen2Config(**small), (2, 4, 2, 64, 16, False)),
        "olmo2": (transformers.Olmo2Config(**{**small, "num_key_value_heads": 4}), (2, 4, 4, 64, 16, False)),
        "gemma2": (transformers.Gemma2Config(**small, head_dim=16), (2, 4, 2, 64, 16, False)),
        "gemma3_text": (transformers.Gemma3TextConfig(**small, head_dim=16), (2, 4, 2, 64, 16, False)),
        "gemma3": (transformers.Gemma3Config(text_config={**small, "head_dim": 16}), (2, 4, 2, 64, 16, False)),
    }
    for model_type, (config, expected) in made.items():
        folder = tmp_path / model_type
        config.save_pretrained(folder)
        result = resolve_shape(ModelRef(model_type, quoted=True, base_dir=tmp_path))
        assert numbers(result) == expected, model_type


# ---------------------------------------------------------------------------------
# The local Hugging Face cache
# ---------------------------------------------------------------------------------

TINY_LLAMA = {"model_type": "llama", "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
              "hidden_size": 64, "head_dim": 16}


def cache_model(cache: Path, repo_id: str, config: dict, revision: str = "0123abcd", main: bool = True) -> Path:
    """A model in the Hugging Face cache layout (config.json only, as a config-only download leaves it)."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if main:
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot / "config.json"


def test_a_name_in_the_hugging_face_cache_gets_its_cached_shape(empty_hf_cache: Path) -> None:
    with pytest.raises(ShapeError):
        resolve_shape(ModelRef("acme/tiny-llama"))
    path = cache_model(empty_hf_cache, "acme/tiny-llama", TINY_LLAMA)
    assert cached_config("acme/tiny-llama") == path
    shape = resolve_shape(ModelRef("acme/tiny-llama"))
    assert numbers(shape) == (3, 4, 2, 64, 16, False)
    assert shape.name == "acme/tiny-llama"
    assert shape.source == "Hugging Face cache config.json (llama)"
    assert numbers(resolve_shape(ModelRef("Acme/Tiny-Llama"))) == numbers(shape)  # the Hub ignores case


def test_a_bare_name_in_the_cache_and_the_main_revision(empty_hf_cache: Path) -> None:
    cache_model(empty_hf_cache, "tiny-neox", {**PYTHIA_1B, "num_hidden_layers": 5}, revision="old", main=False)
    (empty_hf_cache / "models--tiny-neox" / "refs").mkdir()
    (empty_hf_cache / "models--tiny-neox" / "refs" / "main").write_text("new")
    newer = empty_hf_cache / "models--tiny-neox" / "snapshots" / "new"
    newer.mkdir()
    (newer / "config.json").write_text(json.dumps({**PYTHIA_1B, "num_hidden_layers": 7}))
    shape = resolve_shape(ModelRef("tiny-neox"))
    assert shape.n_layers == 7 and shape.parallel_attn_mlp


def test_hf_home_locates_the_cache_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    cache_model(tmp_path / "home" / "hub", "acme/tiny-llama", TINY_LLAMA)
    assert resolve_shape(ModelRef("acme/tiny-llama")).source.startswith("Hugging Face cache config.json")


def test_cache_lookups_never_leave_the_cache(empty_hf_cache: Path) -> None:
    cache_model(empty_hf_cache, "acme/tiny-llama", TINY_LLAMA)
    for name in ("../acme/tiny-llama", "acme/../acme/tiny-llama", "/abs/path", "acme--tiny-llama", "zoo:x",
                 "a/b/c", ""):
        assert cached_config(name) is None, name


def test_a_cached_config_that_is_broken_is_e210(empty_hf_cache: Path) -> None:
    cache_model(empty_hf_cache, "acme/broken", {"model_type": "llama", "hidden_size": 64})
    with pytest.raises(ShapeError) as caught:
        resolve_shape(ModelRef("acme/broken"))
    assert caught.value.code == "E210" and "`num_hidden_layers`" in caught.value.message


def test_the_table_wins_over_the_cache(empty_hf_cache: Path) -> None:
    cache_model(empty_hf_cache, "google/gemma-2-2b", {**GEMMA_2_2B, "num_hidden_layers": 3})
    assert resolve_shape(ModelRef("google/gemma-2-2b")) is KNOWN_SHAPES["google/gemma-2-2b"]


# ---------------------------------------------------------------------------------
# `model` lines in .circ files
# ---------------------------------------------------------------------------------

@pytest.mark.parametrize("line", ["model pythia-1b", "model google/gemma-2-2b", "model Qwen/Qwen2.5-0.5B",
                                  "model meta-llama/Llama-3.1-8B", "model gemma-2-2b", "model olmo-2-1b"])
def test_model_lines_name_table_models_unquoted(line: str) -> None:
    shape = resolve_shape(ModelRef(line.split()[1]))
    last = f"L{shape.n_layers - 1}.H{shape.n_heads - 1}"
    assert cl.compile_text(f"{line}\ncircuit c {{ embed -> {last}.q\n {last} -> logits }}\n").ok
    past = cl.compile_text(f"{line}\ncircuit c {{ L0.H{shape.n_heads} -> logits }}\n")
    assert codes(past) == ["E202"]  # head out of range
    deep = cl.compile_text(f"{line}\ncircuit c {{ L{shape.n_layers}.H0 -> logits }}\n")
    assert codes(deep) == ["E201"]  # layer out of range


def test_an_unquoted_table_name_wins_over_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "google" / "gemma-2-2b"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**GEMMA_2_2B, "num_hidden_layers": 2}))
    assert resolve_shape(ModelRef("google/gemma-2-2b", base_dir=tmp_path)).n_layers == 26
    assert resolve_shape(ModelRef("google/gemma-2-2b", quoted=True, base_dir=tmp_path)).n_layers == 2


@pytest.mark.parametrize("line, help_says", [
    ('model "google/gemma-2-2b"', "without quotes"),  # a quoted table name is a directory
    ("model acme/not-downloaded", "Hugging Face cache"),  # an unknown org/name
])
def test_a_name_that_is_nowhere_is_e210_with_a_way_out(tmp_path: Path, line: str, help_says: str) -> None:
    main = tmp_path / "m.circ"
    main.write_text(line + "\n")
    result = cl.compile_file(main)
    assert codes(result) == ["E210"]
    assert help_says in result.diagnostics[0].help


def test_a_hugging_face_directory_and_a_cached_name_in_a_circ_file(tmp_path: Path, empty_hf_cache: Path) -> None:
    ckpt = tmp_path / "runs" / "my-model"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text(json.dumps(TINY_LLAMA))
    main = tmp_path / "m.circ"
    main.write_text('model "runs/my-model"\ncircuit c { L2.H3 -> logits\n L3.H0 -> logits }\n')
    assert codes(cl.compile_file(main)) == ["E201"]
    cache_model(empty_hf_cache, "acme/tiny-llama", TINY_LLAMA)
    cached = cl.compile_text("model acme/tiny-llama\ncircuit c { L2.H3 -> logits\n L0.H4 -> logits }\n")
    assert codes(cached) == ["E202"]


# ---------------------------------------------------------------------------------
# `circ models`
# ---------------------------------------------------------------------------------

def test_circ_models_lists_each_shape_with_its_source_and_aliases() -> None:
    result = CliRunner().invoke(cli, ["models"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    row = next(i for i, line in enumerate(lines) if line.split()[:1] == ["pythia-1b"])
    assert lines[row].split()[1:6] == ["16", "x", "8", "2048", "256"]
    assert KNOWN_SHAPES["pythia-1b"].source in lines[row + 1] and "EleutherAI/pythia-1b" in lines[row + 1]
    qwen = next(line for line in lines if line.startswith("Qwen/Qwen2.5-0.5B "))
    assert "24 x 14 (kv 2)" in qwen
    assert all(name in result.output for name in KNOWN_SHAPES)


def test_circ_models_json() -> None:
    result = CliRunner().invoke(cli, ["models", "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert list(rows) == list(KNOWN_SHAPES)
    gemma = rows["google/gemma-2-2b"]
    assert (gemma["n_layers"], gemma["n_heads"], gemma["n_kv_heads"], gemma["d_model"], gemma["d_head"]) == \
        (26, 8, 4, 2304, 256)
    assert gemma["aliases"] == ["gemma-2-2b"] and gemma["source"].startswith("shipped table: ")
    assert rows["pythia-1b"]["parallel_attn_mlp"] and rows["pythia-1b"]["kind"] == "parallel attention + MLP"
