"""The documentation is executable: every example in docs/ compiles as it claims.

- docs/diagnostics.md has one `### CODE: title` section per registered code, in the
  registry's order, with the registry's title; each section's ```circ example starts with
  `// expect: CODE` and must produce that code.
- every ```circ block in docs/language.md compiles with no errors (or, when it starts
  with `// expect: CODE`, produces that code), and each `// NAME: N edges` and
  `// same hash: A, B` comment in it holds for the compiled circuits.
- the tables of models and of JSON fields match the code.

Examples compile with `compile_text(..., check_files=False)`, relative imports resolving
against tests/fixtures/docs/. A snippet marked `// expect: CODE (not emitted yet)` is
skipped with that reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import circuitlang as cl
from circuitlang.core.diagnostics import CODES, Diagnostic
from circuitlang.core.models import KNOWN_SHAPES
from circuitlang.core.spans import Span
from circuitlang.lang import parse, source
from circuitlang.lang.check import ABLATIONS, CHECK_OPTIONS, EXPECTATIONS, METRICS, TASK_SETTINGS
from circuitlang.present.diagnostic_text import to_json

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE = ROOT / "docs" / "language.md"
DIAGNOSTICS = ROOT / "docs" / "diagnostics.md"
FIXTURES = ROOT / "tests" / "fixtures" / "docs"

# Codes about reading a file, shown with shell commands rather than .circ text; each has a
# test of its own below.
FILE_CODES = ("E001", "E002", "E003", "E004")
# Interop codes come from graph JSON (`circ import`/`export`), not .circ text: tested in test_interop.py.
JSON_CODES = tuple(code for code in CODES if code[1] == "6")
# Codes about the command line (`--model`), tested in test_model_override.py.
OPTION_CODES = ("E215",)

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_EXPECT = re.compile(r"^//\s*expect:\s*([EW]\d{3})\b\s*(?:\((.*)\))?\s*$")
_HEADING = re.compile(r"^### ([EW]\d{3}): (.+?)\s*$", re.M)
_EDGE_CLAIM = re.compile(r"^\s*//\s*(\w+):\s*(\d+) edges?\s*$", re.M)
_HASH_CLAIM = re.compile(r"^\s*//\s*same hash:\s*(.+?)\s*$", re.M)


class Block:
    def __init__(self, lang: str, body: str, line: int, section: str | None):
        self.lang, self.body, self.line, self.section = lang, body, line, section
        first = body.lstrip("\n").split("\n", 1)[0].strip()
        match = _EXPECT.match(first)
        self.expect = match.group(1) if match else None
        self.note = match.group(2) if match else None

    def __repr__(self) -> str:
        return f"line {self.line}"


def _blocks(path: Path, lang: str) -> list[Block]:
    if not path.is_file():
        return []  # test_docs_exist reports it
    text = path.read_text(encoding="utf-8")
    headings = [(m.start(), m.group(1)) for m in _HEADING.finditer(text)]
    out = []
    for m in _FENCE.finditer(text):
        if m.group(1) != lang:
            continue
        section = None
        for start, code in headings:
            if start < m.start():
                section = code
        out.append(Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, section))
    return out


def _compile(source: str) -> cl.Compiled:
    return cl.compile_text(source, path="example.circ", base_dir=FIXTURES, check_files=False)


def _shown(result: cl.Compiled) -> str:
    return "\n".join(f"{d.span}: {d.code} {d.message}" for d in result.diagnostics) or "no diagnostics"


def test_docs_exist() -> None:
    assert LANGUAGE.is_file() and DIAGNOSTICS.is_file()


# ---------------------------------------------------------------------------------
# docs/diagnostics.md
# ---------------------------------------------------------------------------------


def _headings() -> list[tuple[str, str]]:
    return _HEADING.findall(DIAGNOSTICS.read_text(encoding="utf-8")) if DIAGNOSTICS.is_file() else []


def test_every_code_has_a_section_with_its_title() -> None:
    documented = dict(_headings())
    for code, (_, title) in CODES.items():
        assert code in documented, f"docs/diagnostics.md has no `### {code}: {title}` section"
        assert documented[code] == title, f"{code}: the doc says {documented[code]!r}, the registry {title!r}"


def test_every_section_names_a_registered_code_once_in_registry_order() -> None:
    codes = [code for code, _ in _headings()]
    unknown = [c for c in codes if c not in CODES]
    assert not unknown, f"docs/diagnostics.md documents unregistered codes: {unknown}"
    assert len(codes) == len(set(codes)), "a code is documented twice"
    assert codes == [c for c in CODES if c in codes], "sections are not in the registry's order"


def test_every_section_has_a_tagged_example() -> None:
    tagged = {b.section for b in _blocks(DIAGNOSTICS, "circ") if b.expect and b.expect == b.section}
    missing = [c for c in CODES if c not in tagged and c not in FILE_CODES + JSON_CODES + OPTION_CODES]
    assert not missing, f"sections without a ```circ example starting `// expect: CODE`: {missing}"


def test_tags_match_their_section() -> None:
    for block in _blocks(DIAGNOSTICS, "circ"):
        if block.expect:
            assert block.expect == block.section, f"{block}: tagged {block.expect} under {block.section}"


@pytest.mark.parametrize("block", [b for b in _blocks(DIAGNOSTICS, "circ") if b.expect], ids=repr)
def test_diagnostic_example_produces_its_code(block: Block) -> None:
    if block.note and "not emitted" in block.note:
        pytest.skip(f"{block.expect}: {block.note}")
    result = _compile(block.body)
    codes = {d.code for d in result.diagnostics}
    assert block.expect in codes, f"{block}: expected {block.expect}, got\n{_shown(result)}"


def test_json_fields_are_documented() -> None:
    """The ```json example in docs/diagnostics.md has exactly the fields `report.to_json` writes."""
    blocks = _blocks(DIAGNOSTICS, "json")
    assert blocks, "docs/diagnostics.md shows no ```json example"
    example = json.loads(blocks[0].body)[0]
    d = Diagnostic("E201", "m", Span("x.circ", 1, 1, 1, 2))
    assert set(example) == set(to_json(d))
    text = DIAGNOSTICS.read_text(encoding="utf-8")
    for key in to_json(d):
        assert f"| `{key}` |" in text, f"JSON field `{key}` is not in the field table"


# -- the codes about reading files, which a text snippet cannot produce -------------------


def _codes_of(path: Path) -> set[str]:
    return {d.code for d in cl.compile_file(path).diagnostics}


def test_e001_unreadable_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.circ"  # a directory cannot be read as a file, even by root
    folder.mkdir()
    _, diagnostics = parse.parse_file(folder)
    assert [d.code for d in diagnostics] == ["E001"]


def test_e002_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.circ"
    path.write_bytes(b"model gpt2\n// caf\xe9 au lait\n")
    assert "E002" in _codes_of(path)


def test_e003_binary(tmp_path: Path) -> None:
    path = tmp_path / "blob.circ"
    path.write_bytes(b"model gpt2\n\x00\x00\x00")
    assert "E003" in _codes_of(path)


def test_e004_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MAX_FILE_BYTES", 64)
    path = tmp_path / "huge.circ"
    path.write_text("model gpt2\n" + "circuit c { L9.H6 -> logits }\n" * 4, encoding="utf-8")
    assert "E004" in _codes_of(path)


# ---------------------------------------------------------------------------------
# docs/language.md
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _blocks(LANGUAGE, "circ"), ids=repr)
def test_language_example_compiles(block: Block) -> None:
    if block.note and "not emitted" in block.note:
        pytest.skip(f"{block.expect}: {block.note}")
    result = _compile(block.body)
    if block.expect:
        assert block.expect in {d.code for d in result.diagnostics}, \
            f"{block}: expected {block.expect}, got\n{_shown(result)}"
        return
    errors = [d for d in result.diagnostics if d.is_error]
    assert not errors, f"{block} does not compile:\n{_shown(result)}"
    for name, count in _EDGE_CLAIM.findall(block.body):
        assert name in result.circuits, f"{block}: no circuit `{name}`"
        assert len(result.circuits[name].edges) == int(count), \
            f"{block}: `{name}` has {len(result.circuits[name].edges)} edges, the doc says {count}"
    for names in _HASH_CLAIM.findall(block.body):
        hashes = {result.circuits[n.strip()].content_hash for n in names.split(",")}
        assert len(hashes) == 1, f"{block}: {names} do not share one content hash"


def test_language_has_examples() -> None:
    assert len(_blocks(LANGUAGE, "circ")) >= 10


def test_model_table_matches_known_shapes() -> None:
    text = LANGUAGE.read_text(encoding="utf-8")
    for name, shape in KNOWN_SHAPES.items():
        row = re.search(rf"^\| `{re.escape(name)}` \| (\d+) \| (\d+) \| (\d+) \|", text, re.M)
        assert row, f"docs/language.md's model table has no row for `{name}`"
        assert tuple(map(int, row.groups())) == (shape.n_layers, shape.n_heads, shape.d_model), name


def test_settings_and_expectations_are_documented() -> None:
    text = LANGUAGE.read_text(encoding="utf-8")
    for word in (*TASK_SETTINGS, *ABLATIONS, *METRICS, *EXPECTATIONS, *CHECK_OPTIONS):
        assert f"`{word}" in text, f"docs/language.md does not mention `{word}`"
