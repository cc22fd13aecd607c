"""The registries of ablations, metrics and discovery methods: each entry behaves as its
table here says, and everything that lists them (the CLI's choices, the checks'
validation, the refusals, the docs' tables) comes from the registry.

Adding an entry means adding its expected behaviour below: the tables must name every
registered entry, so a new file without a test fails here.
"""

from __future__ import annotations

import pytest
import torch

from circuitlang.core.ablations import ABLATIONS
from circuitlang.core.errors import CircuitlangError
from circuitlang.core.metrics import METRICS
from circuitlang.core.registry import Registry, UnknownName
from circuitlang.discovery.methods import METHODS
from circuitlang.lang.pipeline import compile_text
from tests.conftest import ROOT, load_script

# ---- the registry itself ---------------------------------------------------------------


def test_a_wrong_name_is_explained_with_the_closest_one() -> None:
    with pytest.raises(UnknownName, match="did you mean `logit_diff`") as info:
        METRICS["logit_dif"]
    assert isinstance(info.value, CircuitlangError) and "logprob" in (info.value.help or "")
    with pytest.raises(ValueError, match="two colours"):
        Registry("colour", [("red", 1), ("red", 2)])


def test_entries_are_ordered_by_rank_with_the_default_first() -> None:
    assert METRICS.names()[0] == "logit_diff" and ABLATIONS.names()[0] == "resample"
    assert METHODS.names()[0] == "eap-ig"
    for registry in (METRICS, ABLATIONS, METHODS):
        ranks = [entry.rank for entry in registry.values()]
        assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


# ---- metrics: each on one example -------------------------------------------------------

LOGITS = torch.tensor([[[2.0, 0.0, 1.0]], [[0.0, 3.0, 0.0]]])  # two variants, one example
ANSWER, WRONG = torch.tensor([0]), torch.tensor([2])
REFERENCE = torch.log_softmax(torch.tensor([[2.0, 0.0, 1.0]]), -1)  # the model = variant 0
LOGP0 = torch.log_softmax(LOGITS[0, 0], -1)
LOGP1 = torch.log_softmax(LOGITS[1, 0], -1)
EXPECTED_METRICS = {
    "logit_diff": [1.0, 0.0],
    "logprob": [float(LOGP0[0]), float(LOGP1[0])],
    "prob": [float(LOGP0[0].exp()), float(LOGP1[0].exp())],
    "kl": [0.0, float((LOGP0.exp() * (LOGP0 - LOGP1)).sum())],
    "accuracy": [1.0, 0.0],
}


def test_every_metric_is_tested_here() -> None:
    assert set(EXPECTED_METRICS) == set(METRICS)


@pytest.mark.parametrize("name", sorted(EXPECTED_METRICS))
def test_metric_values(name: str) -> None:
    values = METRICS[name](LOGITS, ANSWER, WRONG, REFERENCE)
    assert values.shape == (2, 1)
    torch.testing.assert_close(values[:, 0], torch.tensor(EXPECTED_METRICS[name]), rtol=1e-6, atol=1e-6)
    half = METRICS[name](LOGITS.to(torch.bfloat16), ANSWER, WRONG, REFERENCE)
    assert half.dtype == torch.float32  # metrics are computed in at least float32


def test_kl_needs_the_reference() -> None:
    with pytest.raises(ValueError, match="log-probabilities"):
        METRICS["kl"](LOGITS, ANSWER, WRONG)


# ---- ablations: each on a stand-in for the senders' outputs -----------------------------


class Cache:
    """A stand-in for SenderCache: one tensor, `map` and `+`."""

    def __init__(self, value: torch.Tensor):
        self.value = value

    def map(self, fn):
        return Cache(fn(self.value))

    def __add__(self, other):
        return Cache(self.value + other.value)


def senders(tokens: torch.Tensor) -> Cache:
    return Cache(tokens.float().unsqueeze(-1) * 10)  # [B, P, 1]: "the output" of the tokens


CLEAN = [torch.tensor([[1, 2], [3, 4]]), torch.tensor([[5, 6]])]
CORRUPT = [torch.tensor([[7, 8], [9, 10]]), torch.tensor([[11, 12]])]
MEAN = (torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).mean(0, keepdim=True) * 10).unsqueeze(-1)
EXPECTED_ABLATIONS = {
    "resample": [senders(t).value for t in CORRUPT],
    "mean": [MEAN, MEAN],
    "zero": [torch.zeros(1, 1, 1), torch.zeros(1, 1, 1)],
}


def test_every_ablation_is_tested_here() -> None:
    assert set(EXPECTED_ABLATIONS) == set(ABLATIONS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ABLATIONS))
def test_ablation_values(name: str) -> None:
    values = ABLATIONS[name].values(senders, CLEAN, CORRUPT)
    assert len(values) == len(CLEAN)
    for got, expected in zip(values, EXPECTED_ABLATIONS[name]):
        torch.testing.assert_close(got.value, expected)


# ---- methods: what each accepts -----------------------------------------------------------

REFUSED = {  # method -> the metrics whose gradient makes its scores noise
    "exact": set(), "acdc": set(), "eap": {"kl", "accuracy"}, "eap-ig": {"accuracy"},
}


def test_every_method_is_tested_here() -> None:
    assert set(REFUSED) == set(METHODS)


@pytest.mark.parametrize("method", sorted(REFUSED))
def test_refusals_come_from_the_method_and_the_metric(method: str) -> None:
    entry = METHODS[method]
    for metric in METRICS.values():
        problem = entry.refusal(metric)
        assert (problem is not None) == (metric.name in REFUSED[method]), (method, metric.name)
        if problem:  # it names the methods that can use the metric
            for other in METHODS.values():
                if other is not entry and other.accepts(metric):
                    assert other.name in problem, problem


# ---- everything that lists them -------------------------------------------------------------


def test_cli_choices_are_the_registries() -> None:
    from circuitlang.cli.discover import discover

    choices = {p.name: tuple(p.type.choices) for p in discover.params if hasattr(p.type, "choices")}
    assert choices["method"] == METHODS.names()
    assert choices["ablation"] == ABLATIONS.names() and choices["metric"] == METRICS.names()


def test_checks_accept_exactly_the_registered_names() -> None:
    for ablation in ABLATIONS:
        for metric in METRICS:
            text = f"model gpt2\ncircuit c {{ L9.H6 -> logits }}\ntask t {{ data \"x.jsonl\"  ablation {ablation}  " \
                   f"metric {metric} }}\n"
            assert compile_text(text, check_files=False).ok, (ablation, metric)
    wrong = compile_text("model gpt2\ncircuit c { L9.H6 -> logits }\ntask t { data \"x.jsonl\"  metric logprb }\n",
                         check_files=False)
    (diagnostic,) = wrong.diagnostics
    assert diagnostic.code == "E402" and diagnostic.help == "did you mean `logprob`?"


def test_docs_tables_are_current() -> None:
    generator = load_script("gen_registry_docs")
    for page in sorted(set(generator.PAGES.values())):
        text = (ROOT / page).read_text(encoding="utf-8")
        assert generator.render(text, page) == text, f"{page}: run .venv/bin/python scripts/gen_registry_docs.py"
