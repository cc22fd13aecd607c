"""The standard library and the examples: every file is clean, canonical and drawable; the
zoo's hypotheses hold when evaluated; the motifs expand to the edges they are written to
mean; docs/stdlib.md is what scripts/gen_stdlib_docs.py writes.

Files about pretrained models (GPT-2, attn-only-4l, redwood_attn_2l) are checked
statically only: no weights are available offline.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import circuitlang
from circuitlang.lang.fmt import format_module
from circuitlang.lang.lower import groups_of
from circuitlang.lang.parse import parse_file
from circuitlang.lang.pipeline import compile_file, compile_text
from circuitlang.present.render import dot_available, to_dot
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
STDLIB = ROOT / "stdlib"
EXAMPLES = ROOT / "examples"
STDLIB_FILES = sorted(STDLIB.rglob("*.circ"))
ZOO_FILES = sorted((STDLIB / "zoo").glob("*.circ"))
IOI = STDLIB / "gpt2" / "ioi.circ"
GREATER_THAN = STDLIB / "gpt2" / "greater_than.circ"
CIRC = str(Path(sys.executable).with_name("circ"))



def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def edges(graph) -> set[str]:
    return {str(e) for e in graph.edges}


@pytest.fixture(autouse=True)
def _repository_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import stdlib.X` and list_stdlib() read this repository's stdlib/, whatever the shell says."""
    monkeypatch.delenv("CIRCUITLANG_STDLIB", raising=False)


# ---- docs/stdlib.md --------------------------------------------------------------------------


def test_docs_stdlib_md_is_current() -> None:
    expected = load_script("gen_stdlib_docs").render()
    current = (ROOT / "docs" / "stdlib.md").read_text(encoding="utf-8")
    assert current == expected, "docs/stdlib.md is out of date: run .venv/bin/python scripts/gen_stdlib_docs.py"


def test_docs_list_every_file_circuit_and_motif() -> None:
    from circuitlang.lang.library import list_stdlib

    text = (ROOT / "docs" / "stdlib.md").read_text(encoding="utf-8")
    entries = list_stdlib()
    assert len(entries) == len(STDLIB_FILES)
    for entry in entries:
        assert entry.errors == 0, entry.import_name
        assert entry.source, f"{entry.import_name}: the first comment line should cite the source"
        assert f"## {entry.import_name}\n" in text
        for name, nodes, n_edges in entry.circuits:
            assert f"| `{name}` | {nodes} | {n_edges} |" in text
        for name, params in entry.motifs:
            assert f"| `{name}` | {', '.join(params)} |" in text


# ---- every stdlib file ---------------------------------------------------------------------


@pytest.mark.parametrize("path", STDLIB_FILES, ids=rel)
def test_stdlib_file_is_clean(path: Path) -> None:
    """Parses, checks statically with no error and no warning, and cites a source."""
    module, parse_diagnostics = parse_file(path)
    assert parse_diagnostics == []
    result = compile_file(path)
    assert [f"{d.code} {d.message} ({d.span.line}:{d.span.column})" for d in result.diagnostics] == []
    assert module.comments and module.comments[0].line == 1, "start with a header comment citing the source"


@pytest.mark.parametrize("path", STDLIB_FILES, ids=rel)
def test_stdlib_file_is_a_fmt_fixed_point(path: Path) -> None:
    module, _ = parse_file(path)
    assert format_module(module) == module.source, f"run: circ fmt {rel(path)}"


@pytest.mark.parametrize("path", STDLIB_FILES, ids=rel)
def test_stdlib_circuits_render_to_dot(path: Path) -> None:
    result = compile_file(path, check_files=False)
    for name, graph in result.circuits.items():
        dot = to_dot(graph, groups=groups_of(result.program, name))
        assert dot.startswith("digraph") and dot.rstrip().endswith("}"), name
        for node in graph.nodes:
            assert str(node) in dot, (name, str(node))


def test_cli_checks_and_formats_the_stdlib() -> None:
    for args in (["check", "--static", "--strict", "stdlib"], ["fmt", "--check", "stdlib"]):
        done = subprocess.run([CIRC, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


# ---- the zoo's hypotheses, evaluated ---------------------------------------------------------


@pytest.mark.parametrize("path", ZOO_FILES + [EXAMPLES / "zoo_checked.circ", EXAMPLES / "tutorial_induction.circ"],
                         ids=rel)
def test_zoo_checks_pass(path: Path) -> None:
    outcome = circuitlang.check_file(path)
    assert outcome.checks, "a zoo file should state hypotheses"
    assert not outcome.problems, [vars(p) for p in outcome.problems]
    failed = [f"{c.circuit.circuit} on {c.circuit.task} ({c.circuit.ablation}): {r.text}: {r.detail}"
              for c in outcome.checks for r in c.results if not r.passed]
    assert outcome.passed and not failed, failed


# ---- motifs expand to the edges written out by hand ------------------------------------------


def instantiate(motif_file: str, call: str, model: str = "gpt2") -> set[str]:
    text = f"model {model}\nimport stdlib.motifs.{motif_file} as m\ncircuit c = m.{call}\n"
    result = compile_text(text, "motif_test.circ", base_dir=ROOT)
    assert result.ok, [str(d) for d in result.diagnostics]
    return edges(result.circuits["c"])


def test_previous_token_motif() -> None:
    assert instantiate("induction", "previous_token(L2.H2)") == {
        "embed -> L2.H2.q", "embed -> L2.H2.k", "embed -> L2.H2.v", "L2.H2 -> logits",
    }


def test_induction_motif() -> None:
    assert instantiate("induction", "induction(L4.H11, L5.H5 | L6.H9)") == {
        "embed -> L4.H11.q", "embed -> L4.H11.k", "embed -> L4.H11.v",
        "L4.H11 -> L5.H5.k", "L4.H11 -> L6.H9.k",
        "embed -> L5.H5.q", "embed -> L5.H5.v", "embed -> L6.H9.q", "embed -> L6.H9.v",
        "L5.H5 -> logits", "L6.H9 -> logits",
    }


def test_duplicate_token_motif() -> None:
    assert instantiate("duplicate_token", "duplicate_token(L0.H1 | L3.H0, L7.H3)") == {
        "embed -> L0.H1.q", "embed -> L0.H1.k", "embed -> L0.H1.v",
        "embed -> L3.H0.q", "embed -> L3.H0.k", "embed -> L3.H0.v",
        "L0.H1 -> L7.H3.k", "L0.H1 -> L7.H3.v", "L3.H0 -> L7.H3.k", "L3.H0 -> L7.H3.v",
        "embed -> L7.H3.q", "L7.H3 -> logits",
    }


def test_name_mover_motif() -> None:
    assert instantiate("name_mover", "name_mover(L9.H9 | L10.H0)") == {
        "embed -> L9.H9.q", "embed -> L9.H9.k", "embed -> L9.H9.v",
        "embed -> L10.H0.q", "embed -> L10.H0.k", "embed -> L10.H0.v",
        "L9.H9 -> logits", "L10.H0 -> logits",
    }


def test_s_inhibition_name_mover_motif() -> None:
    assert instantiate("name_mover", "s_inhibition_name_mover(L7.H3 | L8.H6, L9.H9)") == {
        "embed -> L7.H3.q", "embed -> L7.H3.k", "embed -> L7.H3.v",
        "embed -> L8.H6.q", "embed -> L8.H6.k", "embed -> L8.H6.v",
        "L7.H3 -> L9.H9.q", "L8.H6 -> L9.H9.q",
        "embed -> L9.H9.k", "embed -> L9.H9.v", "L9.H9 -> logits",
    }


def test_copy_suppression_motif() -> None:
    # L10.H0 -> L10.H7.q does not exist (same layer) and is dropped silently.
    assert instantiate("copy_suppression", "copy_suppression(L9.H9 | L10.H0, L10.H7 | L11.H10)") == {
        "embed -> L9.H9.q", "embed -> L9.H9.k", "embed -> L9.H9.v",
        "embed -> L10.H0.q", "embed -> L10.H0.k", "embed -> L10.H0.v",
        "L9.H9 -> L10.H7.q", "L9.H9 -> L11.H10.q", "L10.H0 -> L11.H10.q",
        "embed -> L10.H7.k", "embed -> L10.H7.v", "embed -> L11.H10.k", "embed -> L11.H10.v",
        "L9.H9 -> logits", "L10.H0 -> logits", "L10.H7 -> logits", "L11.H10 -> logits",
    }


def test_copy_suppression_motif_with_an_mlp_copier() -> None:
    assert instantiate("copy_suppression", "copy_suppression(L9.MLP, L10.H7)") == {
        "embed -> L9.MLP", "L9.MLP -> L10.H7.q", "embed -> L10.H7.k", "embed -> L10.H7.v",
        "L9.MLP -> logits", "L10.H7 -> logits",
    }


# The instantiations given in the motif files' header comments (lines "//     ...").
COMMENT_EXAMPLES = {
    "copy_suppression.circ": {"cs": 23},
    "duplicate_token.circ": {"dup": 41},
    "induction.circ": {"on_gpt2": 11},
    "name_mover.circ": {"name_movers": 12, "core": 33},
}


@pytest.mark.parametrize("name", sorted(COMMENT_EXAMPLES))
def test_motif_comment_examples_compile_with_the_stated_sizes(name: str) -> None:
    source = (STDLIB / "motifs" / name).read_text(encoding="utf-8")
    examples = [line[len("//     "):] for line in source.splitlines() if line.startswith("//     ")]
    assert examples, f"{name}: give a concrete instantiation in a comment"
    result = compile_text("model gpt2\n" + source + "\n" + "\n".join(examples) + "\n", name, base_dir=ROOT)
    assert result.ok, [str(d) for d in result.diagnostics]
    assert {n: len(g.edges) for n, g in result.circuits.items()} == COMMENT_EXAMPLES[name]
    # the sizes are also stated in the comment itself
    for count in COMMENT_EXAMPLES[name].values():
        assert re.search(rf"\b{count} (and \d+ )?edges\b|\b\d+ and {count} edges\b", source), (name, count)


def test_zoo_motif_instantiation_equals_the_planted_circuit() -> None:
    result = compile_file(STDLIB / "zoo" / "induction.circ")
    assert result.circuits["from_motif"].content_hash == result.circuits["induction"].content_hash


def test_redwood_induction_is_the_motif_on_layer_0_and_heads_1_5_1_6() -> None:
    result = compile_file(STDLIB / "attn_only_2l" / "induction.circ")
    assert result.model == "redwood_attn_2l"
    prev = [f"L0.H{h}" for h in range(8)]
    ind = ["L1.H5", "L1.H6"]
    expected = {f"embed -> {p}.{c}" for p in prev for c in "qkv"}
    expected |= {f"{p} -> {i}.k" for p in prev for i in ind}
    expected |= {f"embed -> {i}.{c}" for i in ind for c in "qv"}
    expected |= {f"{i} -> logits" for i in ind}
    assert edges(result.circuits["induction"]) == expected
    assert len(expected) == 46


def test_redwood_induction_comment_example_is_acdcs_finding_within_the_upper_bound() -> None:
    """The header's example (ACDC's main.py finding: head 0.0 feeding head 1.6's key) compiles
    in the file, and it is a sub-circuit of `induction`, whose layer 0 is an upper bound."""
    path = STDLIB / "attn_only_2l" / "induction.circ"
    source = path.read_text(encoding="utf-8")
    examples = [line[len("//     "):] for line in source.splitlines() if line.startswith("//     ")]
    assert examples == ["circuit induction = motifs.induction(L0.H0, induction_heads)"]
    text = source + "\n" + examples[0].replace("circuit induction =", "circuit acdc_found =") + "\n"
    result = compile_text(text, "induction.circ", base_dir=path.parent)
    assert result.ok, [str(d) for d in result.diagnostics]
    found, bound = edges(result.circuits["acdc_found"]), edges(result.circuits["induction"])
    assert "L0.H0 -> L1.H6.k" in found and "embed -> L0.H0.v" in found and found < bound
    assert len(found) == 3 + 2 + 4 + 2  # embed -> 0.0 (q, k, v); 0.0 -> keys; embed -> q, v; -> logits


def test_docstring_circuit_matches_acdc_true_edges() -> None:
    """ACDC's get_docstring_subgraph_true_edges, without its 13 edges inside heads."""
    result = compile_file(STDLIB / "attn_only_4l" / "docstring.circ")
    assert result.model == "attn-only-4l"
    acdc = {
        "L0.H5 -> L1.H4.v", "embed -> L0.H5.v",
        "embed -> L2.H0.q", "L0.H5 -> L2.H0.q", "embed -> L2.H0.k", "L0.H5 -> L2.H0.k", "L1.H4 -> L2.H0.v",
        "embed -> L1.H4.v",
        "embed -> L1.H2.q", "embed -> L1.H2.k", "L0.H5 -> L1.H2.q", "L0.H5 -> L1.H2.k",
    }
    for mover in ("L3.H0", "L3.H6"):
        acdc |= {f"{mover} -> logits", f"L1.H4 -> {mover}.q", f"embed -> {mover}.v", f"L0.H5 -> {mover}.v",
                 f"L2.H0 -> {mover}.k", f"L1.H2 -> {mover}.k"}
    assert edges(result.circuits["acdc"]) == acdc and len(acdc) == 24
    heads = {str(n) for n in result.circuits["docstring"].nodes} - {"embed", "logits"}
    assert heads == {"L0.H5", "L1.H2", "L1.H4", "L2.H0", "L3.H0", "L3.H6"}
    assert result.circuits["docstring"].level == "node"


# ---- the examples ----------------------------------------------------------------------------


def _example_ids(path: Path) -> str:
    return path.name


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.circ")), ids=_example_ids)
def test_example_compiles_and_is_formatted(path: Path) -> None:
    result = compile_file(path)
    assert [str(d) for d in result.diagnostics] == []
    module, _ = parse_file(path)
    assert format_module(module) == module.source, f"run: circ fmt {rel(path)}"


def test_compose_ioi_with_motif() -> None:
    result = compile_file(EXAMPLES / "compose_ioi_with_motif.circ")
    assert result.ok, [str(d) for d in result.diagnostics]
    published = compile_file(IOI).circuits
    ioi, unpositioned = published["ioi"], published["ioi_unpositioned"]
    c = result.circuits
    assert edges(unpositioned) | edges(c["induction"]) == edges(c["with_induction"])
    induction_heads = ["L5.H5", "L5.H8", "L5.H9", "L6.H9"]
    assert edges(c["added_by_motif"]) == ({f"embed -> {h}.{ch}" for h in induction_heads for ch in "qv"}
                                          | {f"{h} -> logits" for h in induction_heads})
    assert edges(ioi) <= edges(c["with_copy_suppression"])
    backup = {"L9.H0", "L9.H7", "L10.H1", "L10.H2", "L10.H6", "L10.H10", "L11.H2", "L11.H9"}
    assert backup & {str(n) for n in ioi.nodes}, "IOI should contain the backup name movers"
    assert not backup & {str(n) for n in c["without_backup"].nodes}
    assert edges(c["without_backup"]) < edges(ioi)


def test_diff_greater_than_script(tmp_path: Path) -> None:
    names = compile_file(GREATER_THAN, check_files=False).circuits
    assert {"acdc", "hanna"} <= set(names), f"diff_greater_than.sh names acdc and hanna; the file has {list(names)}"
    if not dot_available():
        pytest.skip("Graphviz `dot` is not installed (apt-get install -y graphviz)")
    env = {**os.environ, "CIRC": CIRC, "OUT": str(tmp_path)}
    done = subprocess.run(["sh", str(EXAMPLES / "diff_greater_than.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "removed" in done.stdout or "added" in done.stdout
    assert (tmp_path / "gt-diff.svg").read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
    assert (tmp_path / "gt-diff.json").exists()


def test_ci_workflow_runs_the_documented_commands() -> None:
    text = (EXAMPLES / "ci" / "circuits.yml").read_text(encoding="utf-8")
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["circuits"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "circ check --skip-unavailable circuits/" in runs
    assert "circ fmt --check circuits/" in runs
    assert any(step.get("uses", "").startswith("actions/cache@") for step in steps)


def test_tutorial_snippets_are_in_its_finished_file() -> None:
    """docs/tutorial.md builds examples/tutorial_induction.circ; its code must not drift from it."""
    tutorial = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
    finished_text = (EXAMPLES / "tutorial_induction.circ").read_text(encoding="utf-8")
    finished = {line.strip() for line in finished_text.splitlines()}
    blocks = re.findall(r"^```circ\n(.*?)^```", tutorial, re.S | re.M)
    assert len(blocks) >= 6
    for block in blocks:
        if "gt.hanna" in block or "no_position on repeat_tokens with ablation = zero" in block:
            continue  # the CI section's other files
        if "circuit value_only" in block:
            assert block.strip() == (EXAMPLES / "resample_trap.circ").read_text(encoding="utf-8").strip()
            continue  # trap.circ, its own file
        replaced = "check induction_circuit on repeat_tokens with ablation = resample"  # later replaced
        block = block.split(replaced)[0]
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("//"):
                assert line in finished, f"tutorial line not in examples/tutorial_induction.circ: {line}"
