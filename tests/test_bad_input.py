"""Bad input of every kind comes back as diagnostics: never a traceback, never a hang.

Guards `compile_file`/`compile_text` and the CLI on: binary files, invalid UTF-8,
empty and comment-only files, oversized files, unreadable paths, a BOM, CRLF line
endings, deep nesting, very long `|` chains, import cycles, missing imports and
duplicate definitions. Known bugs are strict xfails whose reason starts with "BUG:".
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from pathlib import Path

import pytest

from circuitlang.core.diagnostics import CODES, Diagnostic
from circuitlang.lang.fmt import format_module
from circuitlang.lang.parse import MAX_FILE_BYTES, MAX_NESTING, parse_text
from circuitlang.lang.pipeline import compile_file, compile_text
from tests.conftest import ROOT


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8", newline="")
    return path


def codes(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.code for d in diagnostics]


def only(diagnostics: list[Diagnostic], code: str) -> Diagnostic:
    found = [d for d in diagnostics if d.code == code]
    assert len(found) == 1, codes(diagnostics)
    return found[0]


def well_formed(diagnostics: list[Diagnostic]) -> None:
    for d in diagnostics:
        assert d.code in CODES
        assert d.span.line >= 1 and d.span.column >= 1 and d.span.path


# ---------------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------------


def test_binary_file_is_e003_at_the_first_nul(tmp_path: Path) -> None:
    path = write(tmp_path / "bin.circ", b"model gpt2\ncirc\x00uit\x00 c\n")
    result = compile_file(path)
    d = only(result.diagnostics, "E003")
    assert (d.span.line, d.span.column) == (2, 5)
    assert not result.ok and codes(result.diagnostics) == ["E003"]


def test_invalid_utf8_is_e002_at_the_bad_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.circ", b'model gpt2\ncircuit c "ab\xffcd" { }\n')
    result = compile_file(path)
    d = only(result.diagnostics, "E002")
    assert (d.span.line, d.span.column) == (2, 14)
    assert "0xff" in d.message
    assert codes(result.diagnostics) == ["E002"]


def test_invalid_utf8_column_counts_characters(tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.circ", 'circuit c "éé'.encode() + b'\xff" { }\n')
    d = only(compile_file(path).diagnostics, "E002")
    assert (d.span.line, d.span.column) == (1, 14)


@pytest.mark.parametrize("content", ["", "   \n\t\n", "// only a comment\n\n// and another\n", "\ufeff"])
def test_empty_or_comment_only_file_warns_without_errors(tmp_path: Path, content: str) -> None:
    result = compile_file(write(tmp_path / "empty.circ", content))
    assert "W005" in codes(result.diagnostics)
    assert result.ok, codes(result.diagnostics)
    well_formed(result.diagnostics)


def test_oversized_file_is_e004_without_being_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.circ"
    with path.open("wb") as f:  # sparse: no real disk use
        f.truncate(MAX_FILE_BYTES + 1)

    def refuse(self: Path) -> bytes:
        raise AssertionError(f"read {self} although it is over the limit")

    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    monkeypatch.setattr(pathlib.Path, "read_text", refuse)
    result = compile_file(path)
    assert codes(result.diagnostics) == ["E004"]
    assert result.diagnostics[0].span.path == str(path)


def test_file_exactly_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "edge.circ"
    chunk = "// " + "x" * 1020 + "\n"
    with path.open("w", encoding="utf-8") as f:
        f.write(chunk * (MAX_FILE_BYTES // len(chunk)))
        f.write("/" * (MAX_FILE_BYTES - f.tell()))
    assert path.stat().st_size == MAX_FILE_BYTES
    assert "E004" not in codes(compile_file(path).diagnostics)


@pytest.mark.skipif(not Path("/dev/zero").exists() or sys.platform != "linux", reason="needs /dev/zero")
def test_endless_device_is_refused_not_read_forever() -> None:
    script = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30));"
              "from circuitlang.lang.pipeline import compile_file;"
              "print(*[d.code for d in compile_file('/dev/zero').diagnostics])")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-300:]
    assert proc.stdout.split() in (["E004"], ["E001"])


def test_directory_is_e001(tmp_path: Path) -> None:
    result = compile_file(tmp_path)
    assert codes(result.diagnostics) == ["E001"]
    assert result.diagnostics[0].span.line == 1


@pytest.mark.parametrize("relative", ["missing.circ", "not_a_dir.circ/inner.circ"])
def test_missing_path_is_e001(tmp_path: Path, relative: str) -> None:
    write(tmp_path / "not_a_dir.circ", "model gpt2\n")
    assert codes(compile_file(tmp_path / relative).diagnostics) == ["E001"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_e001(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.circ", "model gpt2\n")
    path.chmod(0)
    try:
        assert codes(compile_file(path).diagnostics) == ["E001"]
    finally:
        path.chmod(0o644)


# ---------------------------------------------------------------------------------
# Encodings and line endings
# ---------------------------------------------------------------------------------


def test_bom_is_accepted_and_columns_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.circ", "\ufeffmodel gpt2\ncircuit c {\n    L12.H0 -> logits\n}\n")
    result = compile_file(path)
    d = only(result.diagnostics, "E201")  # layer 12 does not exist in gpt2
    assert (d.span.line, d.span.column) == (3, 5)
    assert result.program is not None and result.program.root.model_name == "gpt2"


def test_crlf_file_parses_and_columns_are_right(tmp_path: Path) -> None:
    source = "model gpt2\r\n\r\ncircuit c {\r\n    L0.H1 -> logits\r\n    L12.H0 -> logits\r\n}\r\n"
    result = compile_file(write(tmp_path / "crlf.circ", source.encode()))
    d = only(result.diagnostics, "E201")
    assert (d.span.line, d.span.column, d.span.end_column) == (5, 5, 11)
    assert codes(result.diagnostics) == ["E201"]


def test_crlf_syntax_error_position(tmp_path: Path) -> None:
    result = compile_file(write(tmp_path / "crlf.circ", b"model gpt2\r\ncircuit c {\r\n    L0.H1 -> }\r\n"))
    d = only(result.diagnostics, "E102")
    assert (d.span.line, d.span.column) == (3, 14)


# ---------------------------------------------------------------------------------
# Size and depth
# ---------------------------------------------------------------------------------


def test_deep_parentheses_without_operators_are_fine() -> None:
    text = "model gpt2\ngroup g = L0.H1\ncircuit c = " + "(" * 5000 + "g" + ")" * 5000 + "\n"
    result = compile_text(text, "deep.circ", check_files=False)
    assert result.ok, codes(result.diagnostics)


def test_deeply_nested_set_expression_is_a_diagnostic() -> None:
    depth = 500
    text = "model gpt2\ncircuit c = " + "(L0.H1 | " * depth + "L0.H2" + ")" * depth + "\n"
    result = compile_text(text, "deep.circ", check_files=False)
    d = only(result.diagnostics, "E110")
    assert "nested too deeply" in d.message and str(MAX_NESTING) in d.label


def test_nesting_at_the_limit_is_accepted() -> None:
    depth = MAX_NESTING - 1
    text = "model gpt2\ncircuit c = " + "(L0.H1 | " * depth + "L0.H2" + ")" * depth + "\n"
    result = compile_text(text, "deep.circ", check_files=False)
    assert result.ok, codes(result.diagnostics)
    assert {"L0.H1", "L0.H2"} <= {str(n) for n in result.circuits["c"].nodes}


@pytest.mark.parametrize("shape", ["calls", "channels", "call_in_set"])
def test_deeply_nested_calls_and_channels_are_a_diagnostic(shape: str) -> None:
    depth = 500
    inner = {"calls": "f(" * depth + "L0.H1" + ")" * depth,
             "channels": "(" * depth + "L0.H1" + ").q" * depth,
             "call_in_set": "L0.H2 | " + "f(" * depth + "L0.H1" + ")" * depth}[shape]
    text = f"model gpt2\ncircuit m(x) {{ x -> logits }}\ncircuit c = {inner}\n"
    module, diagnostics = parse_text(text, "deep.circ")
    if not diagnostics:
        format_module(module)
    result = compile_text(text, "deep.circ", check_files=False)
    assert not result.ok
    well_formed(result.diagnostics)


def test_long_union_chain_parses_and_lowers(tmp_path: Path) -> None:
    heads = [f"L{i % 12}.H{(i // 12) % 12}" for i in range(5000)]
    source = f"model gpt2\ngroup g = {' | '.join(heads)}\ncircuit c {{\n    g -> logits\n}}\n"
    result = compile_file(write(tmp_path / "long.circ", source))
    assert result.ok, codes(result.diagnostics)
    assert len(result.circuits["c"].edges) == 144  # every head of gpt2, once
    module, _ = parse_text(source, "long.circ")
    assert parse_text(format_module(module), "long.circ")[0] == module


def test_long_difference_and_intersection_chains() -> None:
    chain = " - ".join(["L*.H*"] + [f"L{i % 12}.H{i % 12}" for i in range(3000)])
    both = " & ".join(["L*.H*"] * 3000)
    text = f"model gpt2\ngroup a = {chain}\ngroup b = {both}\ncircuit c {{\n    a, b\n}}\n"
    result = compile_text(text, "chains.circ", check_files=False)
    assert result.ok, codes(result.diagnostics)


def test_many_edges_and_targets() -> None:
    targets = ", ".join(f"L{1 + i % 11}.H{i % 12}.{'qkv'[i % 3]}" for i in range(3000))
    result = compile_text(f"model gpt2\ncircuit c {{\n    embed -> {targets}\n}}\n", "wide.circ",
                          check_files=False)
    assert result.ok, codes(result.diagnostics)


@pytest.mark.parametrize("text", [
    "model gpt2\ncircuit c { L" + "9" * 5000 + ".H1 -> logits }\n",
    "task t { seed " + "9" * 5000 + " }\n",
    "circuit c { embed -> logits @" + "9" * 5000 + " }\n",
], ids=["component", "number", "position"])
def test_huge_integer_literal_is_a_diagnostic(text: str) -> None:
    module, diagnostics = parse_text(text, "big.circ")
    assert diagnostics and all(d.code in CODES for d in diagnostics)


@pytest.mark.parametrize("line", [
    'import "' + "a" * 300 + '.circ" as x',
    "import " + "a" * 300,
    'model "' + "a" * 300 + '"',
], ids=["import_path", "import_module", "model_path"])
def test_overlong_path_is_a_diagnostic(tmp_path: Path, line: str) -> None:
    result = compile_file(write(tmp_path / "long_name.circ", line + "\n"))
    assert any(d.code in ("E303", "E210") for d in result.diagnostics)


# ---------------------------------------------------------------------------------
# Names and imports across files
# ---------------------------------------------------------------------------------


def test_import_cycle_is_e304(tmp_path: Path) -> None:
    write(tmp_path / "a.circ", 'model gpt2\nimport "b.circ" as b\ncircuit x = b.y\n')
    write(tmp_path / "b.circ", 'model gpt2\nimport "a.circ" as a\ncircuit y { L0.H1 -> logits }\n')
    result = compile_file(tmp_path / "a.circ")
    d = only(result.diagnostics, "E304")
    assert "a.circ -> b.circ -> a.circ" in d.message
    assert d.span.path.endswith("b.circ") and d.span.line == 2


def test_self_import_is_e304(tmp_path: Path) -> None:
    result = compile_file(write(tmp_path / "me.circ", 'import "me.circ" as me\n'))
    assert "E304" in codes(result.diagnostics)


def test_missing_import_is_e303_with_did_you_mean(tmp_path: Path) -> None:
    write(tmp_path / "helpers.circ", "model gpt2\ngroup g = L0.H1\n")
    path = write(tmp_path / "main.circ", 'model gpt2\nimport "helprs.circ" as h\nimport lib.nothing\n')
    result = compile_file(path)
    e303 = [d for d in result.diagnostics if d.code == "E303"]
    assert [(d.span.line, d.span.column) for d in e303] == [(2, 8), (3, 8)]
    assert e303[0].help == "did you mean `helpers`?"
    assert "helprs.circ" in e303[0].message


def test_missing_stdlib_import_points_at_the_stdlib() -> None:
    result = compile_text("model gpt2\nimport stdlib.gpt2.nope\n", "x.circ", check_files=False)
    d = only(result.diagnostics, "E303")
    assert d.help


def test_duplicate_definition_is_e302_with_related_span(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.circ", "model gpt2\ngroup a = L0.H1\ncircuit a {\n    L0.H1 -> logits\n}\n")
    d = only(compile_file(path).diagnostics, "E302")
    assert (d.span.line, d.span.column) == (3, 9)
    (related,) = d.related
    assert (related.span.path, related.span.line, related.span.column) == (str(path), 2, 7)


def test_errors_in_an_imported_file_are_reported_there(tmp_path: Path) -> None:
    write(tmp_path / "broken.circ", "model gpt2\ncircuit c { $ }\n")
    result = compile_file(write(tmp_path / "main.circ", 'model gpt2\nimport "broken.circ" as b\n'))
    d = only(result.diagnostics, "E101")
    assert d.span.path.endswith("broken.circ") and (d.span.line, d.span.column) == (2, 13)


def test_binary_imported_file_is_e003(tmp_path: Path) -> None:
    write(tmp_path / "bin.circ", b"\x00\x01\x02")
    result = compile_file(write(tmp_path / "main.circ", 'model gpt2\nimport "bin.circ" as b\n'))
    assert "E003" in codes(result.diagnostics)
    well_formed(result.diagnostics)


# ---------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "circuitlang", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


@pytest.mark.parametrize(("name", "data", "code"), [
    ("binary.circ", b"model gpt2\n\x00\x00\x00", "E003"),
    ("syntax.circ", b"model gpt2\ncircuit c {\n    L0.H1 -> -> logits\n}\n", "E102"),
    ("latin1.circ", b"model gpt2 // caf\xe9\n", "E002"),
])
def test_cli_reports_bad_files_without_a_traceback(tmp_path: Path, name: str, data: bytes, code: str) -> None:
    path = write(tmp_path / name, data)
    proc = run_cli("check", "--static", str(path))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert code in proc.stdout
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def test_cli_concise_format_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "syntax.circ", "model gpt2\ncircuit c {\n    L0.H1 -> -> logits\n}\n")
    proc = run_cli("check", "--static", "--format", "concise", str(path))
    assert proc.returncode == 1
    assert f"{path}:3:14: E102" in proc.stdout
