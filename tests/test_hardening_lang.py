"""Hardening of name resolution and lowering against hostile input (issue 15): mixed
channel/whole-head sources, deep chains of definitions and imports, cycles in imported
files, absurd shapes, and the cosmetic diagnostics around unknown names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import circuitlang as cl
from circuitlang.cli import cli
from circuitlang.core.shapes import ModelShape
from circuitlang.lang import lower as lower_module
from circuitlang.lang import resolve as resolve_module
from circuitlang.lang.parse import parse_text


def _codes(result: cl.Compiled) -> list[str]:
    return [d.code for d in result.diagnostics]


# -- item 1: a head listed with and without a channel among an edge's sources ------------


@pytest.mark.parametrize("text", [
    "model gpt2\ncircuit c { L1.H3.q | L1.H3 -> logits }",
    "model gpt2\ngroup g = L1.H3.q | L1.H3\ncircuit c { g -> logits }",
    "model gpt2\ncircuit c { L1.H3, L1.H3.k -> logits }",
])
def test_channel_and_whole_head_as_sources_is_e211(text: str) -> None:
    result = cl.compile_text(text)
    assert _codes(result) == ["E211"]


def test_stdlib_listing_survives_such_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.circ").write_text("model gpt2\ncircuit c { L1.H3.q | L1.H3 -> logits }\n", encoding="utf-8")
    (tmp_path / "good.circ").write_text("model gpt2\ncircuit ok { L9.H6 -> logits }\n", encoding="utf-8")
    monkeypatch.setenv("CIRCUITLANG_STDLIB", str(tmp_path))
    runner = CliRunner()
    text = runner.invoke(cli, ["stdlib"])
    assert text.exit_code == 0, text.output
    assert "1 error(s)" in text.output and "circuit ok: 2 nodes, 1 edges" in text.output
    listed = runner.invoke(cli, ["stdlib", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert {e["import"]: e["errors"] for e in json.loads(listed.output)} == {"stdlib.bad": 1, "stdlib.good": 0}


def test_whole_head_and_channel_as_targets_is_no_duplicate() -> None:
    result = cl.compile_text("model gpt2\ncircuit c { embed -> L1.H3.q | L1.H3\n L1.H3 -> logits }")
    assert _codes(result) == []
    assert len(result.circuits["c"].edges) == 4  # q, k, v from embed, and the head to logits


# -- item 2: deep chains and cycles end in diagnostics, never RecursionError -------------


def _chain(kind: str, n: int) -> str:
    if kind == "group":
        lines = [f"group g{i} = g{i + 1}" for i in range(n)] + [f"group g{n} = L1.H3", "circuit c { g0 -> logits }"]
    elif kind == "circuit":
        lines = [f"circuit c{i} = c{i + 1}" for i in range(n)] + [f"circuit c{n} {{ L1.H3 -> logits }}"]
    else:
        lines = [f"circuit c{i} {{ include c{i + 1} }}" for i in range(n)] + [f"circuit c{n} {{ L1.H3 -> logits }}"]
    return "model gpt2\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["group", "circuit", "include"])
def test_long_definition_chain_is_one_e314(kind: str) -> None:
    result = cl.compile_text(_chain(kind, 160))
    assert _codes(result) == ["E314"]


@pytest.mark.parametrize("kind", ["group", "circuit", "include"])
def test_chain_within_the_bound_compiles(kind: str) -> None:
    result = cl.compile_text(_chain(kind, lower_module.MAX_DEFINITION_DEPTH - 2))
    assert result.ok, result.diagnostics[:3]


def test_deep_motif_recursion_through_calls_is_bounded() -> None:
    n = 80
    lines = [f"circuit m{i}(x) {{ include m{i + 1}(x) }}" for i in range(n)]
    lines += [f"circuit m{n}(x) {{ x -> logits }}", "circuit c = m0(L1.H3)"]
    result = cl.compile_text("model gpt2\n" + "\n".join(lines))
    assert "E314" in _codes(result)


def _import_chain(folder: Path, n: int) -> Path:
    for i in range(n):
        text = f"import f{i + 1}\ngroup g = f{i + 1}.g\n" if i < n - 1 else "group g = L1.H3\n"
        (folder / f"f{i}.circ").write_text(text, encoding="utf-8")
    root = folder / "root.circ"
    root.write_text("model gpt2\nimport f0\ncircuit c { f0.g -> logits }\n", encoding="utf-8")
    return root


def test_long_import_chain_is_one_e315(tmp_path: Path) -> None:
    result = cl.compile_file(_import_chain(tmp_path, 245))
    assert _codes(result) == ["E315"]


def test_import_chain_within_the_bound_compiles(tmp_path: Path) -> None:
    result = cl.compile_file(_import_chain(tmp_path, resolve_module.MAX_IMPORT_DEPTH - 1))
    assert result.ok, result.diagnostics[:3]
    assert len(result.circuits["c"].edges) == 1


@pytest.mark.parametrize("lib, use", [
    ("group a = b\ngroup b = a\n", "circuit c { lib.a -> logits }"),
    ("circuit a = b\ncircuit b = a\n", "circuit c = lib.a"),
])
def test_cycle_in_imported_model_agnostic_file_is_e307(tmp_path: Path, lib: str, use: str) -> None:
    (tmp_path / "lib.circ").write_text(lib, encoding="utf-8")
    (tmp_path / "root.circ").write_text(f"model gpt2\nimport lib\n{use}\n", encoding="utf-8")
    result = cl.compile_file(tmp_path / "root.circ")
    assert "E307" in _codes(result)
    assert all(d.span.path.endswith("lib.circ") for d in result.diagnostics if d.code == "E307")


# -- item 3: no duplicate or cascading diagnostics; checks of expressions are named ------


def test_unknown_name_reported_once() -> None:
    result = cl.compile_text("model gpt2\ncircuit c { L1.H3 | foo -> logits }")
    assert _codes(result) == ["E301"]


def test_unknown_member_of_import_reported_once(tmp_path: Path) -> None:
    (tmp_path / "lib.circ").write_text("group a = L1.H3\n", encoding="utf-8")
    result = cl.compile_text("model gpt2\nimport lib\ncircuit c { lib.b -> logits }", base_dir=tmp_path)
    assert _codes(result) == ["E301"]


@pytest.mark.parametrize("imports", ['import nothere', 'import "no where.circ" as nowhere'])
def test_no_e301_through_a_failed_import(tmp_path: Path, imports: str) -> None:
    name = imports.split()[-1]
    result = cl.compile_text(f"model gpt2\n{imports}\ncircuit c {{ {name}.g -> logits }}\ncircuit d = {name}.h",
                             base_dir=tmp_path)
    assert _codes(result) == ["E303"]


def test_no_e301_through_an_import_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.circ").write_text("import b\ngroup x = b.y\n", encoding="utf-8")
    (tmp_path / "b.circ").write_text("import a\ngroup y = a.x\n", encoding="utf-8")
    result = cl.compile_text("model gpt2\nimport a\ncircuit c { a.x -> logits }", base_dir=tmp_path)
    assert "E304" in _codes(result) and "E301" not in _codes(result)


def test_check_of_an_expression_is_named_after_it() -> None:
    result = cl.compile_text('model gpt2\ntask t { data "x.jsonl" }\n'
                             "check L9.H6 | L9.H9 on t { expect faithfulness >= 0.5 }", check_files=False)
    assert result.ok, result.diagnostics
    assert result.checks[0].circuit.name == "L9.H6 | L9.H9"


# -- item 4: shapes that claim absurd sizes --------------------------------------------


def _lowered_against(shape: ModelShape, text: str) -> tuple[dict, list[str]]:
    """Lower `text` as if its model had `shape`: lowering must be safe whatever shape
    it is given (core/models.py validates checkpoint configs separately)."""
    module, _ = parse_text(text)
    program, _ = resolve_module.resolve_module(module)
    program.root.shape = shape
    circuits, diagnostics = lower_module.lower_program(program)
    return circuits, [d.code for d in diagnostics]


@pytest.mark.parametrize("expr", ["L*.MLP -> logits", "L0.H* -> logits", "L*.H*, L3.MLP"])
def test_enumerating_an_absurd_shape_is_e316(expr: str) -> None:
    shape = ModelShape("huge", n_layers=1_000_000_000, n_heads=1_000_000, d_model=64)
    _, codes = _lowered_against(shape, f"model gpt2\ncircuit c {{ {expr} }}")
    assert codes == ["E316"]


def test_node_level_circuit_too_large_is_e316() -> None:
    shape = ModelShape("wide", n_layers=200, n_heads=20, d_model=1280)  # ~25M node-level edges
    circuits, codes = _lowered_against(shape, "model gpt2\ncircuit c { L*.H* }\ncircuit d { L5.H3 -> logits }")
    assert codes == ["E316"]
    assert len(circuits["d"].edges) == 1


def test_api_never_raises_even_past_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the bound lifted, the chain overflows Python's stack: the pipeline's last line
    of defence turns that into E314 rather than a RecursionError."""
    monkeypatch.setattr(lower_module, "MAX_DEFINITION_DEPTH", 100_000)
    result = cl.compile_text(_chain("group", 2000))
    assert _codes(result) == ["E314"] and not result.ok
