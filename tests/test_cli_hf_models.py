"""`circ check`, `circ eval` and `circ discover` on saved Hugging Face directories: a
Llama-config model with grouped-query attention and a Gemma-2-config model (post-norms,
soft-capping, local attention), named in quotes on the `model` line, with a task of
text prompts (JSONL) that goes through the directory's tokenizer. The weights are
random: the numbers mean nothing, every step a researcher's run takes is real.
TransformerLens 3.x cannot load Gemma from a directory and says so (exit 1, no traceback).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

import circuitlang as cl
from circuitlang.cli import cli
from circuitlang.eval.backends.installed import transformer_lens_major
from tests import hf_models

PROMPTS = [("When Mary and John went to the store , John gave a drink to", "Mary", "John"),
           ("When Alice and Bob went to the park , Bob gave a ring to", "Alice", "Bob"),
           ("Then Tom and Anna went to the school , Anna gave a gift to", "Tom", "Anna"),
           ("After John and Mary went to the garden , Mary gave a book to", "John", "Mary")]

CIRC = '''model "{folder}"

circuit small {{
    embed -> L0.H1.k, L0.H0.q, L0.H0.v
    L0.H0 -> L1.H2, L1.MLP
    L1.H2 -> logits
    L1.MLP -> logits
}}

task names {{
    data "prompts.jsonl"
    ablation resample
}}

check small on names {{
    expect faithfulness >= 0.5
}}
'''


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module", params=["llama", "gemma2"])
def project(request, tmp_path_factory) -> tuple[str, Path]:
    family = request.param
    root = tmp_path_factory.mktemp("proj")  # a neutral path: TL 3.x routes paths naming "llama"/"gemma"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_models.save_model(family, root / "m1")
    lines = []
    for prompt, answer, wrong in PROMPTS:
        corrupt = prompt.replace(answer, "X").replace(wrong, answer).replace("X", wrong)
        lines.append(json.dumps({"clean": prompt, "corrupt": corrupt, "answer": " " + answer, "wrong": " " + wrong}))
    (root / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    (root / "c.circ").write_text(CIRC.format(folder="m1"))
    return family, root


def refused(family: str) -> bool:
    return family.startswith("gemma") and transformer_lens_major() == 3


def test_check_runs_on_the_directory(project, monkeypatch) -> None:
    family, root = project
    monkeypatch.chdir(root)
    result = run("check", "c.circ")
    if refused(family):
        assert result.exit_code == 1 and "cannot load the Gemma model" in result.output
        assert "Traceback" not in result.output
        return
    # random weights: the expectation may hold or not (exit 0 or 1); a problem would say so
    assert result.exit_code in (0, 1), result.output
    # L0.H1.k is its key/value group's shared input, L0.H0.k
    assert [d.code for d in cl.compile_file(root / "c.circ").diagnostics] == ["W214"]
    assert "faithfulness" in result.output and "problem" not in result.output.lower(), result.output


def test_eval_writes_finite_numbers(project, monkeypatch) -> None:
    family, root = project
    if refused(family):
        return
    monkeypatch.chdir(root)
    result = run("eval", "c.circ", "--json", "out.json")
    assert result.exit_code in (0, 1), result.output
    report = json.loads((root / "out.json").read_text())
    values = json.dumps(report)
    assert "faithfulness" in values and "NaN" not in values and "Infinity" not in values


def test_discover_finds_a_circuit_that_compiles(project, monkeypatch) -> None:
    family, root = project
    if refused(family):
        return
    monkeypatch.chdir(root)
    for method in ("eap", "eap-ig"):
        out = root / f"found-{method}.circ"
        result = run("discover", "--task", "c.circ:names", "--method", method, "--edges", "6", "-o", str(out))
        assert result.exit_code == 0, result.output
        found = cl.compile_file(out)
        assert found.ok, found.diagnostics
        circuit = found.circuit("found")
        assert len(circuit.edges) == 6
        # key/value edges name their group's first head (2 query heads per key/value head here)
        assert all(e.receiver.head % 2 == 0 for e in circuit.edges if e.channel in ("k", "v"))
        assert all(math.isfinite(float(a.get("score", 0.0))) for a in circuit.annotations.values())


def test_a_post_norm_model_says_how_its_numbers_are_defined(project, monkeypatch) -> None:
    family, root = project
    if family != "gemma2" or refused(family):
        return
    monkeypatch.chdir(root)
    result = run("check", "c.circ")
    assert result.exit_code in (0, 1), result.output
    assert "post-norm divisors are frozen" in result.output


def test_a_name_in_the_local_hugging_face_cache_loads_offline(project, tmp_path: Path, monkeypatch) -> None:
    """`model acme/tiny-llama` with that model in the local Hugging Face cache (laid out as
    the hub client stores it: models--ORG--NAME/snapshots/REVISION/ and refs/main), run
    as a user runs it (`circ check` in a fresh process, HF_HUB_CACHE set): static checks
    read its shape from the cached config.json; TransformerLens 4 loads it offline
    through boot_transformers. TransformerLens 3.x knows only its own official names, and
    says so and what to do instead."""
    family, root = project
    if family != "llama":
        return
    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tiny-llama" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    for item in (root / "m1").iterdir():
        (snapshot / item.name).write_bytes(item.read_bytes())
    (cache / "models--acme--tiny-llama" / "refs").mkdir()
    (cache / "models--acme--tiny-llama" / "refs" / "main").write_text("0123abc")
    (root / "cached.circ").write_text(CIRC.format(folder="m1").replace('model "m1"', "model acme/tiny-llama"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert [d.code for d in cl.compile_file(root / "cached.circ").diagnostics] == ["W214"]  # shape from the cache
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "circuitlang", "check", "cached.circ"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    if transformer_lens_major() == 3:
        assert result.returncode == 1 and "loads only the models it knows by name" in output, output
        assert "TransformerLens 4" in output and "Traceback" not in output
        return
    assert result.returncode in (0, 1), output
    assert "faithfulness" in output and "cannot load" not in output, output
