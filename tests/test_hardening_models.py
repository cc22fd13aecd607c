"""Hardening of checkpoints, devices, threads and `circ models` (issue 15): every bad
checkpoint config or weights file is an E210 naming the field and the file (statically
and at load), never an internal error or a hang; a device torch lacks is a usage error;
`--threads` / CIRC_THREADS set torch's thread count."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import circuitlang as cl
from circuitlang.cli import cli as main
from circuitlang.core.models import (KNOWN_SHAPES, ModelRef, ShapeError, resolve_shape, safetensors_shapes,
                                     shape_from_config)
from circuitlang.eval.backends.base import ModelLoadError
from circuitlang.eval.loading import check_device, load_model, model_for, thread_count
from circuitlang.eval.zoo import induction, weights
from circuitlang.eval.zoo.layout import blank_state

SOURCE = 'model "ckpt"\ncircuit c { L0.H0 -> L1.H1\n L1.H1 -> logits }\n'


def checkpoint(tmp_path: Path, drop: tuple[str, ...] = (), **changes) -> Path:
    """zoo:induction-2l saved as a checkpoint directory `ckpt` (config.json with `changes`,
    without the fields in `drop`), and a .circ file naming it."""
    folder = tmp_path / "ckpt"
    folder.mkdir(exist_ok=True)
    config = {k: v for k, v in induction.CONFIG.items() if k != "model_name" and k not in drop}
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    state = weights("zoo:induction-2l", blank_state).state
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (tmp_path / "c.circ").write_text(SOURCE)
    return folder


def static_and_load_error(tmp_path: Path) -> tuple[str, str]:
    """The E210 message of the static check, and the load error, of `ckpt`."""
    result = cl.compile_file(tmp_path / "c.circ")
    found = [d for d in result.diagnostics if d.code == "E210"]
    assert found, [d.code for d in result.diagnostics]
    with pytest.raises(ModelLoadError) as caught:
        load_model("ckpt", quoted=True, base_dir=tmp_path)
    return found[0].message, caught.value.message


@pytest.mark.parametrize("value, words", [
    (-3, "`n_layers` (= -3) is not a positive integer"),
    (2.7, "`n_layers` (= 2.7) is not a positive integer"),
    (10 ** 9, "`n_layers` (= 1000000000) is more than 1024"),
    ("2", "`n_layers` (= \"2\") is not a positive integer"),
])
def test_bad_sizes_are_e210_naming_the_field_and_file(tmp_path: Path, value, words: str) -> None:
    checkpoint(tmp_path, n_layers=value)
    static, loading = static_and_load_error(tmp_path)
    for message in (static, loading):
        assert words in message and str(tmp_path / "ckpt" / "config.json") in message


def test_an_overflowing_number_is_e210(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path)
    text = (folder / "config.json").read_text().replace('"n_layers": 2', '"n_layers": 1e400')
    (folder / "config.json").write_text(text)
    static, loading = static_and_load_error(tmp_path)
    assert "`n_layers` (= a number beyond a float's range)" in static and "`n_layers`" in loading


def test_deeply_nested_config_is_e210_not_recursion(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path)
    (folder / "config.json").write_text('{"n_layers": 2, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    static, loading = static_and_load_error(tmp_path)
    assert "nested too deeply" in static and "nested too deeply" in loading


def test_corrupt_or_truncated_weights_are_e210(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path)
    whole = (folder / "model.safetensors").read_bytes()
    for broken in (b"garbage" * 10, whole[:-100], b""):
        (folder / "model.safetensors").write_bytes(broken)
        static, loading = static_and_load_error(tmp_path)
        assert "is not a valid safetensors file" in static and "model.safetensors" in loading


def test_weights_header_gives_each_tensor_shape(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path)
    shapes = safetensors_shapes(folder / "model.safetensors")
    assert shapes["embed.W_E"] == (induction.CONFIG["d_vocab"], induction.CONFIG["d_model"])


def test_a_config_that_does_not_fit_the_weights_names_the_field(tmp_path: Path) -> None:
    checkpoint(tmp_path, d_model=64)
    static, loading = static_and_load_error(tmp_path)
    assert "`d_model` (= 64) but embed.W_E has 128" in static and "`d_model`" in loading
    checkpoint(tmp_path, n_layers=3)
    static, _ = static_and_load_error(tmp_path)
    assert "`n_layers` (= 3) but the weights hold 2 blocks" in static


def test_missing_normalization_type_says_which_field_and_the_fix(tmp_path: Path) -> None:
    checkpoint(tmp_path, drop=("normalization_type",))
    static, loading = static_and_load_error(tmp_path)
    for message in (static, loading):
        assert "`normalization_type` (absent, which TransformerLens reads as \"LN\")" in message
        assert "no norm weights" in message
    with pytest.raises(ModelLoadError) as caught:
        load_model("ckpt", quoted=True, base_dir=tmp_path)
    assert '"normalization_type": null' in (caught.value.help or "")


def test_a_config_transformerlens_rejects_is_a_load_error(tmp_path: Path) -> None:
    checkpoint(tmp_path, d_vocab=None)
    static, loading = static_and_load_error(tmp_path)
    assert "`d_vocab` is missing (embed.W_E says" in static


def test_an_unknown_positional_embedding_is_refused_not_ignored(tmp_path: Path) -> None:
    checkpoint(tmp_path, positional_embedding_type="wobble")
    static, loading = static_and_load_error(tmp_path)
    assert "`positional_embedding_type` (= \"wobble\") is not one of" in static
    checkpoint(tmp_path, positional_embedding_type="rotary")
    static, _ = static_and_load_error(tmp_path)
    assert "the weights have pos_embed.W_pos" in static


def test_the_good_checkpoint_still_loads(tmp_path: Path) -> None:
    checkpoint(tmp_path)
    assert load_model("ckpt", quoted=True, base_dir=tmp_path).shape.n_layers == 2


def test_hugging_face_sizes_are_bounded_too() -> None:
    with pytest.raises(ShapeError) as caught:
        shape_from_config({"model_type": "llama", "num_hidden_layers": 10 ** 9, "num_attention_heads": 4,
                           "hidden_size": 64}, "x", "/p/config.json")
    assert "`num_hidden_layers` (= 1000000000) is more than 1024" in caught.value.message
    assert "/p/config.json" in caught.value.message


def test_is_not_e210_for_a_missing_weights_file_statically(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path)
    (folder / "model.safetensors").unlink()
    assert resolve_shape(ModelRef("ckpt", True, tmp_path)).n_layers == 2  # config-only: static passes


# ---------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------

def test_unknown_and_absent_devices_are_load_errors_naming_the_devices() -> None:
    with pytest.raises(ModelLoadError, match="`foo` is not a device torch knows; the devices here are: cpu"):
        check_device("foo")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="not available here"):
            load_model("zoo:induction-2l", device="cuda")
    check_device("cpu")
    check_device("cpu:0")


@pytest.mark.parametrize("device", ["foo", "cuda:99"])
def test_cli_device_is_a_usage_error(device: str) -> None:
    result = CliRunner().invoke(main, ["check", "--device", device, "stdlib/zoo/induction.circ"])
    assert result.exit_code == 2, result.output
    assert f"error: --device {device}:" in result.output and "the devices here are: cpu" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------

def test_thread_count_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIRC_THREADS", raising=False)
    small = resolve_shape(ModelRef("zoo:induction-2l"))
    assert thread_count(small) == 1
    assert 1 <= thread_count(resolve_shape(ModelRef("gpt2"))) <= max(torch.get_num_threads(), os.cpu_count() or 1)
    monkeypatch.setenv("CIRC_THREADS", "3")
    assert thread_count(small) == 3
    monkeypatch.setenv("CIRC_THREADS", "many")
    with pytest.raises(ModelLoadError, match="CIRC_THREADS=many"):
        thread_count(small)


def test_model_for_sets_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        for wanted in ("2", "1"):
            monkeypatch.setenv("CIRC_THREADS", wanted)
            model_for(ModelRef("zoo:induction-2l"))
            assert torch.get_num_threads() == int(wanted)
    finally:
        torch.set_num_threads(before)


def test_cli_threads_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIRC_THREADS", raising=False)
    bad = CliRunner().invoke(main, ["check", "--static", "--threads", "0", "stdlib/zoo/induction.circ"])
    assert bad.exit_code == 2 and "--threads" in bad.output
    good = CliRunner().invoke(main, ["check", "--static", "--threads", "1", "stdlib/zoo/induction.circ"])
    assert good.exit_code == 0, good.output


# ---------------------------------------------------------------------------------
# `circ models`
# ---------------------------------------------------------------------------------

def test_circ_models_columns_line_up() -> None:
    out = CliRunner().invoke(main, ["models"]).output.splitlines()
    header = out[0]
    end_d_model = header.index("d_model") + len("d_model")
    rows = [line for line in out[2:] if line.split() and line.split()[0] in KNOWN_SHAPES]
    assert len(rows) == len(KNOWN_SHAPES)
    for row in rows:
        before = row[:end_d_model].rstrip()
        assert before.split()[-1].isdigit() and row[end_d_model] == " ", row
