"""Resolution: imports (stdlib, relative, quoted), qualified names, unused imports."""

from __future__ import annotations

from pathlib import Path

import circuitlang as cl


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def codes(result: cl.Compiled) -> list[str]:
    return [d.code for d in result.diagnostics]


def test_stdlib_import_binds_the_last_name() -> None:
    result = cl.compile_text("model zoo:induction-2l\nimport stdlib.zoo.induction\n"
                             "circuit c = induction.induction")
    assert result.ok, result.diagnostics
    assert len(result.circuits["c"].edges) == 7


def test_relative_dotted_import_and_qualified_group(tmp_path: Path) -> None:
    write(tmp_path, "lib/heads.circ", "model gpt2\ngroup movers = L9.H9, L9.H6\n")
    main = write(tmp_path, "main.circ", "model gpt2\nimport lib.heads\ncircuit c { heads.movers -> logits }\n")
    result = cl.compile_file(main)
    assert result.ok, result.diagnostics
    assert len(result.circuits["c"].edges) == 2


def test_quoted_import_without_alias_binds_the_file_stem(tmp_path: Path) -> None:
    write(tmp_path, "sub/my_lib.circ", "model gpt2\ncircuit a { L0.H0 -> logits }\n")
    main = write(tmp_path, "main.circ", 'model gpt2\nimport "sub/my_lib.circ"\ncircuit c = my_lib.a\n')
    assert cl.compile_file(main).ok


def test_local_group_of_a_circuit_is_reachable_by_qualified_name() -> None:
    result = cl.compile_text("model gpt2\ncircuit a {\n group g = L3.H3\n g -> logits\n}\n"
                             "circuit b { a.g -> L5.MLP }")
    assert result.ok, result.diagnostics
    assert [str(e) for e in result.circuits["b"].edges] == ["L3.H3 -> L5.MLP"]


def test_unused_import_is_a_warning_not_an_error() -> None:
    result = cl.compile_text("model zoo:induction-2l\nimport stdlib.motifs.induction as m\n"
                             "circuit c { embed -> L0.H0.v\n L0.H0 -> logits }")
    assert result.ok
    assert codes(result) == ["W309"]


def test_unknown_member_of_an_import_suggests_the_near_name() -> None:
    result = cl.compile_text("model zoo:induction-2l\nimport stdlib.zoo.induction as z\ncircuit c = z.inductoin")
    diag = next(d for d in result.diagnostics if d.code == "E301")
    assert "not defined in `z`" in diag.message
    assert diag.help == "did you mean `induction`?"


def test_errors_in_an_imported_file_are_reported_with_its_path(tmp_path: Path) -> None:
    write(tmp_path, "broken.circ", "model gpt2\ncircuit a { L0.H0 -> logits\n")
    main = write(tmp_path, "main.circ", 'model gpt2\nimport "broken.circ" as b\ncircuit c = b.a\n')
    result = cl.compile_file(main)
    assert not result.ok
    assert any(d.code == "E103" and d.span.path.endswith("broken.circ") for d in result.diagnostics)


def test_second_model_declaration_is_an_error() -> None:
    result = cl.compile_text("model gpt2\nmodel gpt2-medium\n")
    assert codes(result) == ["E106"]
    assert result.diagnostics[0].related[0].span.line == 1


def test_unknown_model_suggests_a_known_one() -> None:
    result = cl.compile_text("model gtp2\n")
    assert codes(result) == ["E203"]
    assert result.diagnostics[0].help == "did you mean `gpt2`?"


def test_checkpoint_directory_model_reads_config_json(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"n_layers": 3, "n_heads": 2, "d_model": 16, "attn_only": true}')
    main = write(tmp_path, "m.circ", 'model "ckpt"\ncircuit c { L2.H1 -> logits\n L3.H0 -> logits }\n')
    result = cl.compile_file(main)
    assert codes(result) == ["E201"]
    bad = write(tmp_path, "n.circ", 'model "nowhere"\n')
    assert codes(cl.compile_file(bad)) == ["E210"]


def test_model_less_file_with_concrete_circuits_warns() -> None:
    assert codes(cl.compile_text("circuit c { L0.H0 -> logits }")) == ["W213"]
    assert codes(cl.compile_text("circuit m(x) { x -> logits }")) == []
