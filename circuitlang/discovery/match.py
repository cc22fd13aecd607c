"""Which components of a model play the roles of a motif or of a published circuit:
`circ match`.

A **template** is a circuit with parameters: edges whose ends are parameters (node sets
to be bound to heads or MLPs of the model) or fixed nodes (`embed`, `logits`). It comes
from a motif (`stdlib/motifs/induction.circ:induction`, parameters `prev`, `ind`) or from a
circuit written for another model, whose groups become parameters (`transfer`: a group of
three name movers is matched as a set of heads).

The search, for a model and a task:

1. **Candidates per parameter** from one EAP pass: a head's score for a parameter is the
   sum over the template's edges at that parameter of |EAP score| of the edge it would
   be (for an edge between two parameters, the best partner's), so each role is scored
   by the edges it would have, not by the head's importance in general; heads whose
   attention pattern fits the role (`eval.patterns`, for parameters named like a known
   role) are added. `top` candidates per parameter survive.
2. **Bindings**: every combination of candidates (one component per parameter, no
   component in two roles) whose edges run forward through the model is instantiated and all are evaluated in the engine's
   batched variants (many bindings per forward pass), ranked by faithfulness.
3. **Groups**, greedily: a parameter may hold up to `group_size` components (for a
   transferred circuit, the size of its group there); starting from the best binding, the
   single addition that raises faithfulness most is kept while it raises it by at least
   `min_gain`.

The best bindings get 95% bootstrap intervals; `write` gives a .circ of the best one.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Union

from ..core.errors import CircuitlangError
from ..core.graph import CircuitGraph, Edge, Node
from ..core.shapes import ModelShape, feeds

# Placeholder heads are laid out in a model with many layers, so that any order of the
# parameters can be tried (motifs are checked by instantiating them).
_PLACEHOLDER_MODEL = "gpt2-xl"
Endpoint = Union[str, Node]  # a parameter's name, or a fixed node


class MatchError(CircuitlangError):
    """A template cannot be built or matched (not a motif, no valid binding, ...)."""


@dataclass(frozen=True)
class Template:
    """A circuit with parameters. `edges` are (sender, receiver, channel) with each end a
    parameter name or a fixed node; `kinds` says whether a parameter binds heads or MLPs;
    `sizes` how many components it held where it came from (1 for a motif's)."""

    name: str
    params: tuple[str, ...]
    edges: tuple[tuple[Endpoint, Endpoint, str | None], ...]
    kinds: Mapping[str, str]
    sizes: Mapping[str, int]
    source: str


Binding = Mapping[str, tuple[Node, ...]]


@dataclass(frozen=True)
class Match:
    """One binding of a template's parameters, its circuit and what was measured."""

    binding: tuple[tuple[str, tuple[Node, ...]], ...]
    circuit: CircuitGraph
    faithfulness: float
    interval: tuple[float, float] | None = None
    pattern: Mapping[str, float | None] = field(default_factory=dict)  # parameter -> role score of its heads

    def text(self) -> str:
        return ", ".join(f"{p} = {' + '.join(str(n) for n in nodes)}" for p, nodes in self.binding)


@dataclass(frozen=True)
class Result:
    """A search's outcome: bindings best first, and what it took."""

    template: Template
    matches: tuple[Match, ...]
    candidates: Mapping[str, tuple[Node, ...]]
    evaluated: int  # bindings measured
    per_pass: int  # bindings the engine evaluated per forward pass
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------

def load_template(path: Path, name: str | None) -> Template:
    """The template of `name` in the file at `path`: a motif as it is, a circuit with its
    groups as parameters (`name` None: the file's only motif, else its last circuit)."""
    from ..lang.pipeline import load

    compiled = load(path)
    definitions = {s.name: s for s in compiled.program.root.module.statements if hasattr(s, "is_motif")}
    motifs = [n for n, d in definitions.items() if d.is_motif]
    if name is None:
        name = motifs[0] if len(motifs) == 1 else None
        if name is None and not compiled.circuits:
            raise MatchError(f"{path} has {len(motifs)} motifs; name one as {path}:NAME")
    if name is not None and name in definitions and definitions[name].is_motif:
        return _motif_template(path, name, definitions[name].params)
    try:
        circuit = compiled.circuit(name)
    except KeyError as err:
        raise MatchError(str(err.args[0]), f"motifs: {', '.join(motifs) or 'none'}") from None
    return circuit_template(circuit, _groups(compiled, circuit.name), str(path))


def _groups(compiled, circuit_name: str) -> dict[str, frozenset[Node]]:
    from ..lang.lower import groups_of

    return groups_of(compiled.program, circuit_name)


def _motif_template(path: Path, name: str, params: tuple[str, ...]) -> Template:
    """Instantiate the motif with a placeholder head per parameter (in a model with many
    layers, trying parameter orders until the edges run forward) and read its edges back
    in terms of the parameters."""
    from ..lang.pipeline import compile_text

    last = None
    for order in itertools.permutations(range(len(params))):
        heads = [Node.attn(3 + 6 * order[i], i) for i in range(len(params))]
        text = (f'model {_PLACEHOLDER_MODEL}\nimport "{path.resolve().as_posix()}" as source\n'
                f"circuit probe = source.{name}({', '.join(str(h) for h in heads)})\n")
        compiled = compile_text(text, base_dir=path.resolve().parent)
        if compiled.ok:
            of = dict(zip(heads, params))
            edges = tuple(sorted({(of.get(e.sender, e.sender), of.get(e.receiver, e.receiver), e.channel)
                                  for e in compiled.circuits["probe"].edges}, key=str))
            used = {end for e in edges for end in e[:2] if isinstance(end, str)}
            if used != set(params):
                unused = ", ".join(p for p in params if p not in used)
                raise MatchError(f"motif `{name}` has parameters its edges do not use: {unused}")
            return Template(name, params, edges, {p: "head" for p in params}, {p: 1 for p in params}, str(path))
        last = compiled
    first = next((d for d in last.diagnostics if d.is_error), None) if last else None
    raise MatchError(f"motif `{name}` of {path} cannot be instantiated with one head per parameter"
                     + (f": {first.message}" if first else ""),
                     "circ match binds motif parameters to heads; a motif over MLPs is not supported")


def circuit_template(circuit: CircuitGraph, groups: Mapping[str, frozenset[Node]], source: str) -> Template:
    """A circuit written for a model, as a template: each group of its nodes becomes a
    parameter (matched as a set), each head or MLP in no group a parameter of its own;
    `embed` and `logits` stay fixed."""
    owner: dict[Node, str] = {}
    for group, members in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0])):
        for node in sorted(members, key=Node.sort_key):
            if node in circuit.nodes and node not in owner and (node.is_head or node.kind == "mlp"):
                owner[node] = group
    for node in sorted(circuit.nodes, key=Node.sort_key):
        if (node.is_head or node.kind == "mlp") and node not in owner:
            owner[node] = str(node).replace(".", "_")
    params = tuple(dict.fromkeys(owner[n] for n in sorted(owner, key=Node.sort_key)))
    kinds: dict[str, str] = {}
    for node, param in owner.items():
        kind = "head" if node.is_head else "mlp"
        if kinds.setdefault(param, kind) != kind:
            raise MatchError(f"group `{param}` mixes heads and MLPs; circ match binds a parameter to one kind")
    sizes = {p: sum(1 for o in owner.values() if o == p) for p in params}
    edges = tuple(sorted({(owner.get(e.sender, e.sender), owner.get(e.receiver, e.receiver), e.channel)
                          for e in circuit.edges}, key=str))
    return Template(circuit.name, params, edges, kinds, sizes, source)


# ---------------------------------------------------------------------------------
# Bindings
# ---------------------------------------------------------------------------------

def instantiate(template: Template, binding: Binding, shape: ModelShape, name: str = "matched") -> CircuitGraph | None:
    """The circuit of `binding` on a model of `shape`, or None when one of its edges would
    not run forward (or a fixed node does not exist in the model)."""
    edges: set[Edge] = set()
    for sender, receiver, channel in template.edges:
        senders = binding[sender] if isinstance(sender, str) else (sender,)
        receivers = binding[receiver] if isinstance(receiver, str) else (receiver,)
        for s in senders:
            for r in receivers:
                if s == r:
                    continue
                if not _exists(s, shape) or not _exists(r, shape) or not feeds(s, r, shape):
                    return None
                port, ch = shape.port(r, channel) if r.is_head else (r, channel)
                edges.add(Edge(s, port, ch))
    return CircuitGraph.from_edges(edges, name=name) if edges else None


def _exists(node: Node, shape: ModelShape) -> bool:
    if node.is_head:
        return 0 <= node.layer < shape.n_layers and 0 <= node.head < shape.n_heads
    if node.kind == "mlp":
        return not shape.attn_only and 0 <= node.layer < shape.n_layers
    return True


def _components(shape: ModelShape, kind: str) -> list[Node]:
    return shape.heads() if kind == "head" else shape.mlps()


def candidate_scores(template: Template, shape: ModelShape, scores: Mapping[Edge, float]) -> dict[str, dict[Node, float]]:
    """Per parameter, each component's score for the role: the |EAP score| of the edges
    the template would give it (towards a fixed node: that edge; towards another
    parameter: its best partner's edge)."""
    magnitude = {e: abs(v) for e, v in scores.items() if math.isfinite(v)}

    def edge_score(s: Node, r: Node, channel: str | None) -> float:
        port, ch = shape.port(r, channel) if r.is_head else (r, channel)
        return magnitude.get(Edge(s, port, ch), 0.0)

    out: dict[str, dict[Node, float]] = {}
    for param in template.params:
        pool = _components(shape, template.kinds[param])
        totals = {node: 0.0 for node in pool}
        for sender, receiver, channel in template.edges:
            if sender == param and receiver == param:
                continue
            for node in pool:
                if sender == param:
                    partners = [receiver] if isinstance(receiver, Node) else _components(shape, template.kinds[receiver])
                    found = [edge_score(node, r, channel) for r in partners if r != node and feeds(node, r, shape)]
                elif receiver == param:
                    partners = [sender] if isinstance(sender, Node) else _components(shape, template.kinds[sender])
                    found = [edge_score(s, node, channel) for s in partners if s != node and feeds(s, node, shape)]
                else:
                    continue
                # a component that cannot have one of the role's edges (an induction head in
                # layer 0 has no earlier head to read) cannot play the role
                totals[node] = totals[node] + max(found) if found else -math.inf
        out[param] = {node: value for node, value in totals.items() if value > -math.inf}
    return out


def _ranked(values: Mapping[Node, float]) -> list[Node]:
    return sorted(values, key=lambda n: (-values[n], n.sort_key()))


def search(template: Template, evaluator, top: int = 8, group_size: Mapping[str, int] | int | None = None,
           min_gain: float = 0.01, keep: int = 10, patterns: bool = True, seed: int = 0,
           scoring_examples: int = 64, progress: Callable[[str, int, int], None] | None = None) -> Result:
    """Rank bindings of `template` on the evaluator's model and task (module docstring).
    Candidates are scored on the first `scoring_examples` examples (they only rank the
    components); every binding is measured on all of them."""
    session = evaluator.session
    shape = session.backend.shape
    notes: list[str] = []
    for param in template.params:
        if template.kinds[param] == "mlp" and shape.attn_only:
            raise MatchError(f"parameter `{param}` binds MLPs, and {session.backend.name} has none")
    scores = _attribution(evaluator, scoring_examples)
    by_param = candidate_scores(template, shape, scores)
    role_scores = _role_scores(template, session) if patterns else {}
    candidates: dict[str, tuple[Node, ...]] = {}
    for param in template.params:
        if not by_param[param]:
            raise MatchError(f"no component of {session.backend.name} can play `{param}`: the role's edges do not "
                             "run forward through it with the other parameters")
        chosen = _ranked(by_param[param])[:top]
        if param in role_scores:  # heads whose attention fits the role, in case attribution misses them
            fitting = {n: v for n, v in role_scores[param].items() if n in by_param[param] and math.isfinite(v)}
            chosen += [n for n in _ranked(fitting)[:max(1, top // 3)] if n not in chosen]
        candidates[param] = tuple(chosen)
    sizes = _sizes(template, group_size)

    combos = list(itertools.product(*(candidates[p] for p in template.params)))
    graphs, bindings = [], []
    for combo in combos:
        if len(set(combo)) < len(combo):  # one component plays one role
            continue
        binding = {p: (node,) for p, node in zip(template.params, combo)}
        graph = instantiate(template, binding, shape)
        if graph is not None:
            graphs.append(graph)
            bindings.append(binding)
    if not graphs:
        raise MatchError(f"no binding of {template.name}'s parameters to the candidates runs forward through "
                         f"{session.backend.name}", "raise --top to consider more components per parameter")
    per_pass = session.variants_per_pass(graphs)
    if progress:
        session.progress = lambda done, total: progress("evaluating bindings", done, total)
    rows = evaluator.session.metric_of(graphs)  # kept: the shown bindings' intervals come from them
    measured = list(zip(bindings, graphs, evaluator.faithfulness_of(rows).tolist(), rows))
    evaluated = len(graphs)
    best = max(measured, key=lambda m: _finite(m[2]))
    if any(size > 1 for size in sizes.values()):
        grown, tried = _grow(template, evaluator, best, {p: _ranked(by_param[p])[:2 * top] for p in template.params},
                             sizes, min_gain)
        evaluated += tried
        measured += grown
    measured.sort(key=lambda m: (-_finite(m[2]), _key(m[0])))
    unique, seen = [], set()
    for m in measured:
        key = _key(m[0])
        if key not in seen:
            seen.add(key)
            unique.append(m)
    matches = _with_intervals(unique[:keep], evaluator, seed, role_scores, template)
    if not role_scores and patterns:
        notes.append("no parameter is named like a role with an attention signature (prev, ind, dup): "
                     "no attention-pattern scores")
    return Result(template, tuple(matches), candidates, evaluated, per_pass, tuple(notes))


def _attribution(evaluator, examples: int) -> dict[Edge, float]:
    """EAP scores of every edge on the first `examples` examples of the task."""
    from ..eval.evaluator import Evaluator
    from ..eval.session import Session
    from .methods.eap import eap_scores

    session = evaluator.session
    if len(session.data) > examples:
        session = Session(session.backend, session.data.select(slice(0, examples)), session.ablation, session.metric,
                          session.batch_size)
        evaluator = Evaluator(session, draws=0)
    return eap_scores(session, evaluator=evaluator)


def _sizes(template: Template, group_size: Mapping[str, int] | int | None) -> dict[str, int]:
    if group_size is None:
        return dict(template.sizes)
    if isinstance(group_size, int):
        return {p: group_size for p in template.params}
    return {p: group_size.get(p, template.sizes[p]) for p in template.params}


def _grow(template: Template, evaluator, start, pools: Mapping[str, list[Node]], sizes: Mapping[str, int],
          min_gain: float) -> tuple[list, int]:
    """Greedy growth of group parameters from the best single-component binding."""
    shape = evaluator.session.backend.shape
    binding, _, value, _ = start
    binding = dict(binding)
    kept, tried = [], 0
    while True:
        trials = []
        for param in template.params:
            if len(binding[param]) >= sizes[param]:
                continue
            taken = {n for nodes in binding.values() for n in nodes}
            for node in pools[param]:
                if node in taken:
                    continue
                trial = {**binding, param: tuple(sorted((*binding[param], node), key=Node.sort_key))}
                g = instantiate(template, trial, shape)
                if g is not None:
                    trials.append((trial, g))
        if not trials:
            break
        rows = evaluator.session.metric_of([g for _, g in trials])
        values = evaluator.faithfulness_of(rows).tolist()
        tried += len(trials)
        index = max(range(len(trials)), key=lambda i: _finite(values[i]))
        if _finite(values[index]) - _finite(value) < min_gain:
            break
        binding, value = trials[index][0], values[index]
        kept.append((binding, trials[index][1], value, rows[index]))
    return kept, tried


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _key(binding: Binding) -> tuple:
    return tuple((p, tuple(n.sort_key() for n in nodes)) for p, nodes in sorted(binding.items()))


def _role_scores(template: Template, session) -> dict[str, dict[Node, float]]:
    """Attention-pattern scores of every head for the parameters named like a role."""
    from ..eval.patterns import attention_patterns, role_for, role_scores

    roles = {p: role_for(p) for p in template.params if template.kinds[p] == "head"}
    roles = {p: r for p, r in roles.items() if r is not None}
    if not roles:
        return {}
    tokens = session.data.clean[:64]
    patterns = attention_patterns(session.backend, tokens)
    return {p: role_scores(patterns, tokens, role) for p, role in roles.items()}


def _with_intervals(measured, evaluator, seed: int, role_scores, template: Template) -> list[Match]:
    """The kept bindings (binding, circuit, f, per-example metric values) with 95% bootstrap
    intervals of their faithfulness and the mean role score of each parameter's heads."""
    import torch

    from ..eval.bootstrap import interval

    resamples = evaluator.resamples(seed)
    intervals: list = [None] * len(measured)
    if resamples is not None and measured:
        draws = evaluator.faithfulness_draws(torch.stack([rows for *_, rows in measured]), resamples)
        intervals = [interval(d) for d in draws]
    out = []
    for (binding, graph, value, _), iv in zip(measured, intervals):
        pattern = {}
        for p in role_scores:
            mean = sum(role_scores[p][n] for n in binding[p]) / len(binding[p])
            pattern[p] = mean if math.isfinite(mean) else None  # no query position with a target
        out.append(Match(tuple((p, tuple(binding[p])) for p in template.params), graph, float(value),
                         (iv.low, iv.high) if iv is not None else None, pattern))
    return out


def match(motif: str | Path, model, task, name: str | None = None, **options) -> Result:
    """`circ match` for scripts: rank bindings of the motif (or circuit) `name` of the
    file `motif` on `model` (a name or a loaded backend) and `task` (a task from a
    compiled file: its ablation, metric and seed are used). `options` are `search`'s.

    For example (docs/match.md; tests/test_match.py runs it):

        task = circuitlang.load("stdlib/zoo/induction.circ").tasks["repeat_tokens"]
        result = circuitlang.match("stdlib/motifs/induction.circ", "zoo:induction-2l", task, "induction")
        result.matches[0].text()  # 'prev = L0.H2, ind = L1.H1'
    """
    from ..eval.evaluator import Evaluator
    from ..eval.loading import load_model
    from ..eval.session import Session
    from ..eval.tasks.registry import task_data

    backend = load_model(model) if isinstance(model, str) else model
    evaluator = Evaluator(Session(backend, task_data(task, backend, task.seed), task.ablation, task.metric),
                          draws=options.pop("bootstrap", 1000))
    return search(load_template(Path(motif), name), evaluator, seed=task.seed, **options)


def bound_circuit(result: Result, model: str, how: str) -> str:
    """The best binding as a .circ file: its groups, its circuit, and a header saying how
    it was found."""
    from ..lang.write import graph_to_circ

    best = result.matches[0]
    header = [f"found by `circ match` ({how}): {result.template.name} from {result.template.source}",
              f"binding: {best.text()}",
              f"faithfulness {best.faithfulness:.4f}" + (f" [{best.interval[0]:.4f}, {best.interval[1]:.4f}]"
                                                        if best.interval else "")
              + f"; {result.evaluated} bindings evaluated, {result.per_pass} per forward pass"]
    circuit = replace(best.circuit, name=_safe_name(result.template.name), model=model)
    return graph_to_circ(circuit, model, header)


def _safe_name(name: str) -> str:
    from ..present.interop.names import is_circuit_name

    return name if is_circuit_name(name) else "matched"
