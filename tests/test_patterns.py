"""Attention-pattern evidence (circuitlang.eval.patterns): the recomputed patterns are
the model's own, the role masks mean what they say, and the planted and trained zoo
heads score as their roles."""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("transformer_lens")

from circuitlang.core.errors import CircuitlangError  # noqa: E402
from circuitlang.core.graph import Node  # noqa: E402
from circuitlang.eval.backends.base import Site, SiteKind, Unsupported  # noqa: E402
from circuitlang.eval.loading import load_model  # noqa: E402
from circuitlang.eval.patterns import PatternError, Role, attention_patterns, role_for, role_scores  # noqa: E402
from circuitlang.eval.tasks.registry import task_data  # noqa: E402
from circuitlang.lang.check import TaskSpec  # noqa: E402


@lru_cache(maxsize=None)
def model(name: str):
    return load_model(name)


@lru_cache(maxsize=None)
def induction(name: str, n: int):
    backend = model(name)
    data = task_data(TaskSpec("t", ("induction", {"seq_len": 16, "n": n, "seed": 0})), backend)
    return data, attention_patterns(backend, data.clean)


def random_tokens(backend, n: int, p: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, backend.d_vocab, (n, p), generator=gen)


# -- the patterns are the model's -----------------------------------------------------


@pytest.mark.parametrize("name", ["zoo:induction-2l", "zoo:gpt2-random"])
def test_patterns_equal_the_models_own(name):
    backend = model(name)
    tokens = random_tokens(backend, 3, 12)
    patterns = attention_patterns(backend, tokens)
    shape = backend.shape
    assert set(patterns) == {Node.attn(layer, head) for layer in range(shape.n_layers) for head in range(shape.n_heads)}
    with torch.no_grad():
        _, cache = backend.model.run_with_cache(tokens)
    for layer in range(shape.n_layers):
        key = f"blocks.{layer}.attn.hook_pattern"
        assert key in cache, f"{type(backend.model).__name__} has no {key}: compare the patterns another way"
        theirs = cache[key]
        assert theirs.shape == (3, shape.n_heads, 12, 12)
        for head in range(shape.n_heads):
            torch.testing.assert_close(patterns[Node.attn(layer, head)], theirs[:, head], atol=1e-5, rtol=0)


def test_patterns_weight_the_models_values():
    """Through the backend protocol alone: each head's z is its pattern times its values."""
    backend = model("zoo:induction-2l")
    tokens = random_tokens(backend, 4, 10, seed=1)
    patterns = attention_patterns(backend, tokens)
    seen = {}

    def keep(site):
        def hook(act):
            seen[site] = act.detach()
        return hook

    sites = [Site(kind, layer) for layer in range(backend.shape.n_layers) for kind in (SiteKind.V, SiteKind.Z)]
    with torch.no_grad():
        backend.run_with_hooks(tokens, [(site, keep(site)) for site in sites])
    for node, pattern in patterns.items():
        v = seen[Site(SiteKind.V, node.layer)][:, :, node.head]  # [N, P, d_head]
        z = seen[Site(SiteKind.Z, node.layer)][:, :, node.head]
        torch.testing.assert_close(pattern @ v, z, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["zoo:induction-2l", "zoo:gpt2-random"])
def test_rows_sum_to_one_and_are_causal(name):
    backend = model(name)
    patterns = attention_patterns(backend, random_tokens(backend, 2, 9, seed=2))
    above = torch.ones(9, 9, dtype=torch.bool).triu(1)
    for node, pattern in patterns.items():
        assert pattern.shape == (2, 9, 9)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 9), atol=1e-5, rtol=0)
        assert float(pattern[:, above].abs().max()) == 0.0, node
        assert float(pattern.min()) >= 0.0


def test_layers_select_heads_and_bad_input_is_refused():
    backend = model("zoo:induction-2l")
    tokens = random_tokens(backend, 2, 6)
    only = attention_patterns(backend, tokens, layers=[1])
    assert set(only) == {Node.attn(1, head) for head in range(backend.shape.n_heads)}
    torch.testing.assert_close(only[Node.attn(1, 3)], attention_patterns(backend, tokens)[Node.attn(1, 3)])
    with pytest.raises(PatternError, match="layer 2 is out of range"):
        attention_patterns(backend, tokens, layers=[0, 2])
    with pytest.raises(PatternError, match=r"\[N, P\]"):
        attention_patterns(backend, tokens[0])
    refusing = SimpleNamespace(unsupported=lambda: ["attention soft-capping"], shape=backend.shape)
    with pytest.raises(Unsupported, match="soft-capping"):
        attention_patterns(refusing, tokens)
    assert issubclass(PatternError, CircuitlangError) and issubclass(Unsupported, CircuitlangError)


# -- the zoo heads score as their roles ------------------------------------------------


def test_planted_heads_top_their_roles():
    data, patterns = induction("zoo:induction-2l", 64)
    prev = role_scores(patterns, data.clean, Role.PREVIOUS_TOKEN)
    ind = role_scores(patterns, data.clean, Role.INDUCTION)
    print("previous-token", {str(k): round(v, 3) for k, v in prev.items()})
    print("induction", {str(k): round(v, 3) for k, v in ind.items()})
    assert prev[Node.attn(0, 2)] > 0.9  # observed 0.98
    assert max(v for k, v in prev.items() if k != Node.attn(0, 2)) < 0.5  # observed 0.17
    assert ind[Node.attn(1, 1)] > 0.9  # observed 0.97
    assert max(v for k, v in ind.items() if k != Node.attn(1, 1)) < 0.5  # observed 0.08
    # the planted previous-token head attends nowhere near the induction targets, and back
    assert ind[Node.attn(0, 2)] < 0.1 and prev[Node.attn(1, 1)] < 0.5


def test_trained_induction_heads_top_induction():
    data, patterns = induction("zoo:induction-trained", 256)
    ind = role_scores(patterns, data.clean, Role.INDUCTION)
    print("induction", {str(k): round(v, 3) for k, v in ind.items()})
    top = sorted(ind, key=ind.get, reverse=True)[:3]
    assert set(top) == {Node.attn(1, 1), Node.attn(1, 2), Node.attn(1, 3)}
    assert min(ind[node] for node in top) > 0.8  # observed 0.91, 0.97, 0.92
    assert max(v for k, v in ind.items() if k not in top) < 0.4  # observed 0.14 (L1.H0)
    # the figures in stdlib/zoo/induction_trained.circ's comment (same task, n = 256, seed 0):
    # induction mass at END, previous-token mass over all positions (BOS counted as the
    # previous token of position 1, hence skip_first=False; with it the L0 heads score less)
    at_end = role_scores(patterns, data.clean, Role.INDUCTION, at=data.readout)
    for head, documented in [(0, 0.10), (1, 0.88), (2, 0.96), (3, 0.89)]:
        assert abs(at_end[Node.attn(1, head)] - documented) < 0.015, (head, at_end[Node.attn(1, head)])
    prev = role_scores(patterns, data.clean, Role.PREVIOUS_TOKEN, skip_first=False)
    for head, documented in [(0, 0.43), (1, 0.61), (2, 0.44)]:
        assert abs(prev[Node.attn(0, head)] - documented) < 0.015, (head, prev[Node.attn(0, head)])
    strict = role_scores(patterns, data.clean, Role.PREVIOUS_TOKEN)
    assert all(strict[Node.attn(0, head)] < prev[Node.attn(0, head)] for head in range(3))


# -- role masks and scores on hand-built input -----------------------------------------


def cells(mask: torch.Tensor) -> set[tuple[int, int]]:
    """The (query, key) pairs of a [1, P, P] mask."""
    return {(q, k) for q, k in mask[0].nonzero().tolist()}


def test_target_masks_on_a_tiny_example():
    tokens = torch.tensor([[0, 5, 6, 7, 5, 6]])
    assert cells(Role.PREVIOUS_TOKEN.targets(tokens)) == {(q, q - 1) for q in range(1, 6)}
    assert cells(Role.INDUCTION.targets(tokens)) == {(4, 2), (5, 3)}
    assert cells(Role.DUPLICATE_TOKEN.targets(tokens)) == {(4, 1), (5, 2)}
    assert Role.INDUCTION.defined(tokens).tolist() == [[False, False, False, False, True, True]]
    assert Role.PREVIOUS_TOKEN.defined(tokens).tolist() == [[False, True, True, True, True, True]]
    # a token seen twice before has two targets; the one just before makes the induction
    # target the query itself
    tokens = torch.tensor([[0, 5, 5, 5], [0, 1, 2, 3]])
    induction = Role.INDUCTION.targets(tokens)
    assert cells(induction[:1]) == {(2, 2), (3, 2), (3, 3)}
    assert not induction[1].any()
    assert cells(Role.DUPLICATE_TOKEN.targets(tokens)[:1]) == {(2, 1), (3, 1), (3, 2)}
    for role in Role:  # targets are always visible keys
        assert not (role.targets(tokens) & torch.ones(4, 4, dtype=torch.bool).triu(1)).any()


def test_role_scores_on_hand_built_patterns():
    tokens = torch.tensor([[0, 5, 6, 7, 5, 6]])
    on_target = Role.INDUCTION.targets(tokens).float()
    on_target[0, :4, 0] = 1.0  # rows without a target park on BOS
    bos = torch.zeros(1, 6, 6)
    bos[..., 0] = 1.0
    uniform = torch.ones(6, 6).tril()
    uniform = (uniform / uniform.sum(-1, keepdim=True)).unsqueeze(0)
    patterns = {Node.attn(1, 0): on_target, Node.attn(1, 1): bos, Node.attn(1, 2): uniform}
    scores = role_scores(patterns, tokens, Role.INDUCTION)
    assert scores[Node.attn(1, 0)] == pytest.approx(1.0)
    assert scores[Node.attn(1, 1)] == pytest.approx(0.0)
    assert scores[Node.attn(1, 2)] == pytest.approx((1 / 5 + 1 / 6) / 2)  # queries 4 and 5
    # a head parked on BOS hits query 1's previous token; skip_first leaves BOS out as a target
    parked = {Node.attn(0, 0): bos}
    assert role_scores(parked, tokens, Role.PREVIOUS_TOKEN)[Node.attn(0, 0)] == pytest.approx(0.0)
    counted = role_scores(parked, tokens, Role.PREVIOUS_TOKEN, skip_first=False)
    assert counted[Node.attn(0, 0)] == pytest.approx(1 / 5)  # queries 1-5; only query 1's target is BOS
    repeated_bos = torch.tensor([[0, 5, 0, 6]])  # the BOS token again: its only earlier copy is BOS
    parked4 = {Node.attn(0, 0): bos[:, :4, :4]}
    assert math.isnan(role_scores(parked4, repeated_bos, Role.DUPLICATE_TOKEN)[Node.attn(0, 0)])
    assert role_scores(parked4, repeated_bos, Role.DUPLICATE_TOKEN, skip_first=False)[Node.attn(0, 0)] == 1.0
    at = role_scores(patterns, tokens, Role.INDUCTION, at=torch.tensor([5]))
    assert at[Node.attn(1, 2)] == pytest.approx(1 / 6)
    cut = role_scores(patterns, tokens, Role.INDUCTION, lengths=torch.tensor([5]))
    assert cut[Node.attn(1, 2)] == pytest.approx(1 / 5)
    none = role_scores(patterns, torch.tensor([[0, 1, 2, 3, 4, 5]]), Role.DUPLICATE_TOKEN)
    assert all(math.isnan(v) for v in none.values())
    with pytest.raises(PatternError, match="not"):
        role_scores(patterns, tokens[:, :5], Role.INDUCTION)


# -- parameter names ---------------------------------------------------------------------


@pytest.mark.parametrize("name, role", [
    ("prev", Role.PREVIOUS_TOKEN), ("prev_token", Role.PREVIOUS_TOKEN), ("previous_token", Role.PREVIOUS_TOKEN),
    ("previous", Role.PREVIOUS_TOKEN), ("PREV_TOKEN_HEADS", Role.PREVIOUS_TOKEN), ("Previous_Token", Role.PREVIOUS_TOKEN),
    ("ind", Role.INDUCTION), ("induction", Role.INDUCTION), ("induction_heads", Role.INDUCTION),
    ("Induction_Head", Role.INDUCTION),
    ("dup", Role.DUPLICATE_TOKEN), ("duplicate", Role.DUPLICATE_TOKEN), ("duplicate_token", Role.DUPLICATE_TOKEN),
    ("dup_token_heads", Role.DUPLICATE_TOKEN),
])
def test_role_for_known_names(name, role):
    assert role_for(name) is role


@pytest.mark.parametrize("name", [
    "name_mover", "s_inhibition", "heads", "", "_", "indirect", "prevent", "duplicates", "dup2", "inductions",
    "token", "name_mover_prev", "backup_induction",
])
def test_role_for_other_names(name):
    assert role_for(name) is None
