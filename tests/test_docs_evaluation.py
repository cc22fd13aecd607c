"""docs/evaluation.md agrees with the code.

- every ```circ block compiles with no errors;
- the field table of "The report's JSON" lists exactly the fields `checks_json` /
  `report_json` produce (plus `problems`) for a real evaluation: the doc's worked example
  on zoo:induction-2l with 8 examples instead of 256, which must also show the claims
  made about it (under resample the two position-only edges are superfluous, under zero
  ablation every edge is needed);
- the documented generators are registered and take the documented arguments;
- every `--option` the page names exists in `circ --help`, `circ check --help` or
  `circ eval --help`; the documented Python API exists.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import circuitlang as cl

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "evaluation.md"
TEXT = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_ROW = re.compile(r"^\| `([^`]+)` \|(.*)$", re.M)


def _blocks(lang: str) -> list[tuple[int, str]]:
    return [(TEXT.count("\n", 0, m.start()) + 1, m.group(2)) for m in _FENCE.finditer(TEXT) if m.group(1) == lang]


def _section(heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = TEXT.index(heading + "\n")
    rest = TEXT[start + len(heading) + 1:]
    stop = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[:stop.start()] if stop else rest


def _compile(source: str, path: str = "example.circ") -> cl.Compiled:
    return cl.compile_text(source, path=path, base_dir=ROOT / "docs", check_files=False)


def test_doc_exists_and_has_examples() -> None:
    assert DOC.is_file()
    assert len(_blocks("circ")) >= 1


@pytest.mark.parametrize("line, body", _blocks("circ"), ids=lambda x: f"line {x}" if isinstance(x, int) else "")
def test_circ_blocks_compile(line: int, body: str) -> None:
    result = _compile(body)
    errors = [f"{d.code} {d.message}" for d in result.diagnostics if d.is_error]
    assert not errors, f"docs/evaluation.md:{line}: {errors}"


# -- the report's JSON -------------------------------------------------------------------


def _paths(value, prefix: str = "") -> set[str]:
    """Dotted paths of every key in nested dicts; `[]` for lists of dicts (all elements)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            out.add(path)
            out |= _paths(item, path)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                out |= _paths(item, prefix + "[]")
    return out


def _worked_example() -> str:
    (body,) = [b for _, b in _blocks("circ") if "induction_check.circ" in b]
    assert "n = 256" in body
    return body.replace("n = 256", "n = 8")


@pytest.fixture(scope="module")
def worked():
    from circuitlang.eval.runner import RunOptions, run_checks

    compiled = _compile(_worked_example(), "induction_check.circ")
    assert compiled.ok
    outcome = run_checks(compiled, RunOptions(full_report=True, completeness_samples=2))
    assert not outcome.problems, outcome.problems
    return outcome


def test_json_fields_match_the_report(worked) -> None:
    from circuitlang.eval.report import checks_json
    from circuitlang.eval.runner import Problem

    produced = {**checks_json("induction_check.circ", worked.checks), "problems": []}
    real = _paths(produced) | {f"problems[].{f.name}" for f in dataclasses.fields(Problem)}
    assert all(c["report"]["completeness"] for c in produced["checks"])  # so its fields are seen
    documented = {m.group(1) for m in _ROW.finditer(_section("## The report's JSON"))}
    assert documented == real, (f"documented, not produced: {sorted(documented - real)}; "
                                f"produced, not documented: {sorted(real - documented)}")


def test_worked_example_claims(worked) -> None:
    by = {(c.circuit.circuit, c.circuit.ablation): c for c in worked.checks}
    zero, resample = by[("induction", "zero")], by[("induction", "resample")]
    assert len(zero.circuit.edges) == 7 and not any(e.superfluous for e in zero.circuit.edges)
    assert {e.name for e in resample.circuit.edges if e.superfluous} == {"embed -> L0.H2.q", "embed -> L0.H2.k"}
    assert zero.passed and not resample.passed
    assert by[("no_position", "zero")].passed
    # no_position is exactly right for resample, and `robust` says zero ablation disagrees
    no_position = by[("no_position", "resample")]
    assert [r.passed for r in no_position.results] == [True, True, True, False]
    assert "fails under zero" in no_position.results[-1].detail
    # the two edges resample cannot show are named in the warnings of the induction check
    assert sum("costs the circuit" in w for w in resample.circuit.warnings) == 2
    strong = zero.results[2]
    assert strong.text == "minimal with mode = strong" and strong.passed


# -- generators, CLI options, Python API -------------------------------------------------------


def _documented_generators() -> dict[str, list[str]]:
    rows = _ROW.finditer(_section("### Generators"))
    return {m.group(1): re.findall(r"`(\w+)`", m.group(2).split("|")[0]) for m in rows}


def test_documented_generators_exist_with_their_arguments() -> None:
    from circuitlang.eval.tasks.registry import GENERATORS

    documented = _documented_generators()
    assert set(documented) == set(GENERATORS), "docs/evaluation.md's generator table lists every generator"
    for name, args in documented.items():
        assert name in GENERATORS, f"documented generator `{name}` is not registered"
        params = inspect.signature(GENERATORS[name]).parameters
        assert args and set(args) <= set(params), f"{name}: documented {args}, takes {list(params)}"


def test_documented_cli_options_exist() -> None:
    from circuitlang.cli import cli

    runner = CliRunner()
    helps = ""
    for args in (["--help"], ["check", "--help"], ["eval", "--help"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        helps += result.output
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", TEXT))
    assert {"--json", "--markdown", "--completeness", "--seed"} <= options
    missing = sorted(o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", helps))
    assert not missing, f"options in docs/evaluation.md that no command has: {missing}"


def test_documented_python_api_exists() -> None:
    from circuitlang.eval.api import evaluate
    from circuitlang.eval.runner import RunOptions
    from circuitlang.eval.session import Session

    assert callable(cl.load) and callable(cl.check_file) and callable(cl.load_model) and cl.evaluate is evaluate
    assert {"ablation", "metric", "epsilon", "completeness_samples", "batch_size", "seed"} <= \
        set(inspect.signature(evaluate).parameters)
    assert {"device", "dtype", "batch_size", "seed", "skip_unavailable", "full_report", "completeness_samples"} <= \
        {f.name for f in dataclasses.fields(RunOptions)}
    assert {"memory_budget", "engine"} <= {f.name for f in dataclasses.fields(Session)}
