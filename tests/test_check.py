"""Tasks and check blocks: validation and the specs handed to the evaluator."""

from __future__ import annotations

import pytest

import circuitlang as cl
from circuitlang.core.graph import Node

BASE = """model gpt2
group movers = L9.H9, L9.H6
circuit c { embed -> movers.q @END
  movers -> logits @END }
"""


def compile_checks(text: str) -> cl.Compiled:
    return cl.compile_text(BASE + text, "t.circ", check_files=False)


def test_check_spec_carries_task_settings_and_expectations() -> None:
    result = compile_checks("""task t { data induction(seq_len = 16, n = 64)  ablation mean  metric kl
  positions END  seed 3 }
check c on t with epsilon = 0.02 {
  expect faithfulness >= 0.9
  expect minimal
  expect necessary movers
  expect sufficient
  expect completeness <= 0.1 with samples = 20
}""")
    assert result.ok, result.diagnostics
    (spec,) = result.checks
    assert spec.task.data == ("induction", {"seq_len": 16, "n": 64})
    assert (spec.task.ablation, spec.task.metric, spec.task.positions, spec.task.seed) == ("mean", "kl", ("END",), 3)
    assert spec.options == {"epsilon": 0.02}
    kinds = [(e.kind, e.comparison, e.bound) for e in spec.expects]
    assert kinds == [("faithfulness", ">=", 0.9), ("minimal", None, None), ("necessary", ">=", 0.5),
                     ("sufficient", ">=", 0.9), ("completeness", "<=", 0.1)]
    assert spec.expects[2].subject == frozenset({Node.attn(9, 9), Node.attn(9, 6)})
    assert spec.expects[4].options == {"samples": 20}
    assert spec.circuit == result.circuits["c"]


def test_task_defaults() -> None:
    result = compile_checks('task t { data "d.jsonl" }\ncheck c on t { expect faithfulness > 0.5 }')
    task = result.checks[0].task
    assert (task.ablation, task.metric, task.positions) == ("resample", "logit_diff", ())


def test_check_target_can_be_a_composition() -> None:
    result = compile_checks('task t { data "d.jsonl" }\ncheck c - L9.H6 on t { expect faithfulness > 0.5 }')
    assert result.ok
    assert Node.attn(9, 6) not in result.checks[0].circuit.nodes


@pytest.mark.parametrize("text, code, help_contains", [
    ('task t { corrupt resample data "d" }', "E401", "ablation"),
    ('task t { data "d"  metric logitdiff }', "E402", "logit_diff"),
    ('task t { data "d"  ablation shuffle }', "E402", "resample"),
    ('task t { metric kl }', "E406", "data"),
    ('task t { data "d"  data "e" }', "E407", ""),
    ('task t { data "d"  seed 1.5 }', "E402", ""),
    ('task t { data "d" }\ncheck c on t { expect faithfulnes >= 0.9 }', "E403", "faithfulness"),
    ('task t { data "d" }\ncheck c on t { expect faithfulness }', "E404", ">="),
    ('task t { data "d" }\ncheck c on t { expect minimal >= 0.3 }', "E404", "epsilon"),
    ('task t { data "d" }\ncheck c on t { expect necessary }', "E403", ""),
    ('task t { data "d" }\ncheck c on t { expect minimal L9.H9 }', "E403", ""),
    ('task t { data "d" }\ncheck c on t { expect faithfulness >= 95 }', "E404", ""),
    ('task t { data "d" }\ncheck c on t { expect gap <= -1 }', "E404", ""),
    ('task t { data "d" }\ncheck c on t with epsilon = 2 { expect minimal }', "E404", ""),
    ('task t { data "d" }\ncheck c on t with abaltion = zero { expect minimal }', "E408", "ablation"),
    ('task t { data "d" }\ncheck c on t { expect minimal with samples = 3 }', "E408", "epsilon"),
    ('task t { data "d" }\ncheck c on movers { expect minimal }', "E305", ""),
    ('task t { data "d"  positions END }\ncheck c | (L3.H3 -> logits) on t { expect minimal }', "E102", ""),
    ('task t { data "d"  positions IO }\ncheck c on t { expect minimal }', "E405", "IO"),
    ('task t { data "d" }\ncheck c on t { expect necessary L0.H0 }', "W504", ""),
])
def test_task_and_check_diagnostics(text: str, code: str, help_contains: str) -> None:
    result = compile_checks(text)
    found = [d for d in result.diagnostics if d.code == code]
    assert found, [(d.code, d.message) for d in result.diagnostics]
    if help_contains:
        assert help_contains in (found[0].help or "") + found[0].message


def test_missing_data_file_is_reported_relative_to_the_circ_file(tmp_path) -> None:
    path = tmp_path / "x.circ"
    path.write_text(BASE + 'task t { data "nope.jsonl" }\n')
    result = cl.compile_file(path)
    (diag,) = [d for d in result.diagnostics if d.code == "E402"]
    assert "nope.jsonl" in diag.message
    (tmp_path / "nope.jsonl").write_text("{}\n")
    assert cl.compile_file(path).ok
