"""`circ paths FILE:CIRCUIT FROM TO`: output, limits, JSON, errors with codes, no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from circuitlang.cli import cli

ROOT = Path(__file__).resolve().parent.parent
INDUCTION = str(ROOT / "stdlib/zoo/induction.circ")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_paths_of_the_induction_circuit() -> None:
    result = run("paths", f"{INDUCTION}:induction", "embed", "logits")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2 paths from embed to logits in circuit `induction` (5 counting each channel and position):",
        "  embed -> L1.H1.{q,v} -> logits",
        "  embed -> L0.H2.{q,k,v} -> L1.H1.k -> logits"]
    one = run("paths", f"{INDUCTION}:induction", "L0.H2", "L1.H1")
    assert one.output.splitlines() == ["1 path from L0.H2 to L1.H1 in circuit `induction`:", "  L0.H2 -> L1.H1.k"]
    none = run("paths", f"{INDUCTION}:induction", "L1.H1", "L0.H2")
    assert none.exit_code == 0 and none.output == "no path from L1.H1 to L0.H2 in circuit `induction`; " \
        "L1.H1 comes after L0.H2\n"


def test_many_paths_are_limited_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "all.circ"
    path.write_text("model gpt2\ncircuit everything { L0.H*, L1.H*, L2.H*, L0.MLP, L1.MLP, L2.MLP }\n")
    result = run("paths", str(path), "embed", "logits", "--limit", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # per layer: no head or one of 12, then the MLP or not (26 choices); a head's q, k and v count apart (74)
    assert lines[0] == f"{26 ** 3} paths from embed to logits in circuit `everything` ({74 ** 3} counting each " \
                       "channel and position):"
    assert lines[1:4] == ["  embed -> logits", "  embed -> L0.H0.{q,k,v} -> logits", "  embed -> L0.H1.{q,k,v} -> logits"]
    assert lines[4] == f"showing the 3 shortest of {26 ** 3} paths; --limit N shows more"


def test_json_output() -> None:
    result = run("paths", f"{INDUCTION}:induction", "embed", "logits", "--format", "json", "--limit", "1")
    data = json.loads(result.output)
    assert (data["paths"], data["edge_paths"], data["shown"]) == (2, 5, 1)
    assert data["list"] == [{"text": "embed -> L1.H1.{q,v} -> logits", "nodes": ["embed", "L1.H1", "logits"],
                             "edges": [["embed -> L1.H1.q", "embed -> L1.H1.v"], ["L1.H1 -> logits"]]}]


def test_errors_have_codes() -> None:
    unknown = run("paths", f"{INDUCTION}:inductoin", "embed", "logits")
    assert unknown.exit_code == 1
    assert "error[E301]: no circuit `inductoin`" in unknown.output and "did you mean `induction`?" in unknown.output
    node = run("paths", f"{INDUCTION}:induction", "L0.H3", "logits")
    assert node.exit_code == 1 and "error[E313]: `L0.H3` is not a node of circuit `induction`" in node.output
    assert "did you mean `L0.H2`?" in node.output and "stdlib/zoo/induction.circ:" in node.output
    garbage = run("paths", f"{INDUCTION}:induction", "embed", "nonsense")
    assert garbage.exit_code == 1 and "E313" in garbage.output and "its nodes: embed, L0.H2, L1.H1, logits" \
        in garbage.output
    several = run("paths", INDUCTION, "embed", "logits")
    assert several.exit_code == 2 and "name one as" in several.output
    missing = run("paths", "no/such.circ:c", "embed", "logits")
    assert missing.exit_code == 2 and "no such file" in missing.output
    same = run("paths", f"{INDUCTION}:induction", "embed", "embed")
    assert same.exit_code == 2 and "same node" in same.output
    assert "Traceback" not in "".join(r.output for r in (unknown, node, garbage, several, missing, same))


def test_help_explains() -> None:
    text = run("paths", "--help").output
    for words in ("FILE:CIRCUIT FROM TO", "`embed`, `L1.H2`,", "W311", "--limit", "Examples:", "E313"):
        assert words in text
    assert "paths" in run("--help").output


def test_paths_imports_no_torch() -> None:
    probe = ("import sys\nfrom circuitlang.cli import main\n"
             "try:\n    main(['paths', sys.argv[1], 'embed', 'logits'])\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe, f"{INDUCTION}:induction"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
