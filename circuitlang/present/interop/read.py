"""Interop: the graph JSON of EAP-IG and the MIB benchmark, to and from `CircuitGraph`.

Reading: `read_mib`, `load_mib`, `graph_from_mib` (writing is `write.py`, names
`names.py`). The layout, as the tools write and read it (checked against their source):

* hannamw/EAP-IG `src/eap/graph.py` (commit 4fad6c67, `Graph.to_json` / `from_json`):
  `{"cfg": {"n_layers", "n_heads", "parallel_attn_mlp", "d_model"}, "nodes": {NAME:
  {"in_graph": bool, ["score", "neurons", "neurons_scores"]}}, "edges": {NAME: {"score":
  float, "in_graph": bool}}}`, written by `json.dump` on one line. Node names are `input`,
  `a{l}.h{h}`, `m{l}`, `logits`; edge names `PARENT->CHILD`, with `<q>`, `<k>` or `<v>`
  appended when the child is an attention head. Every model gets MLP nodes; with
  `parallel_attn_mlp` a layer's heads do not feed its MLP; `logits` is always in the graph.
* hannamw/EAP-IG `eap/graph.py` (commit 009cb68e, the older package): nodes map to a bare
  bool (`{"a0.h1": true}`), and an edge's score may be `null`.
* mttk/MIB-circuit-track-autoeval `MIB_circuit_track/circuit_loading.py` (the MIB
  leaderboard's loader): same layout; an edge without `"score"` counts as score 0.

What is read: `cfg` (checked against the model, or used to infer it), node names (checked),
edges. An edge without `"in_graph"` counts as in the graph (a file may list only its
circuit); a `null`, missing or non-finite score means "no score". Node flags are not needed
(a circuit is its edges) and neuron masks cannot be expressed in .circ: they are ignored
with a warning (W610). MLP nodes of an attention-only model are accepted as long as no
selected edge touches them (EAP-IG writes them for every model).

What is written: every edge of the model, `in_graph` true for the circuit's edges, each
edge's `score` annotation where it has one and `unscored` elsewhere (`null`, or a number,
which current EAP-IG needs), and a `cfg` with EAP-IG's four keys plus `model_name` (so that
`zoo:gpt2-random` and `gpt2`, which share a shape, import back as themselves) and `unscored`
(the fill value, read back here as "no score"). Positions cannot be written: a circuit with
positions is an error (E608) unless `drop_positions`, which merges an edge's positions into
one edge and sums their scores (attribution scores add up over positions), with W609.

>>> from circuitlang.core.graph import Edge, Node, LOGITS, EMBED
>>> from circuitlang.present.interop.write import graph_to_mib
>>> from circuitlang.core.models import KNOWN_SHAPES
>>> g = CircuitGraph.from_edges([Edge(EMBED, Node.attn(0, 1), "k"), Edge(Node.attn(0, 1), LOGITS)],
...                             model="zoo:induction-2l", annotations={Edge(Node.attn(0, 1), LOGITS): {"score": 0.5}})
>>> data = graph_to_mib(g, KNOWN_SHAPES["zoo:induction-2l"])
>>> data["edges"]["a0.h1->logits"], data["edges"]["input->a0.h1<k>"]
({'score': 0.5, 'in_graph': True}, {'score': None, 'in_graph': True})
>>> back, diagnostics = graph_from_mib(data, source="g.json")
>>> back == g, back.annotations[Edge(Node.attn(0, 1), LOGITS)], diagnostics
(True, {'score': 0.5}, [])
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from collections import Counter
from pathlib import Path
from typing import Callable, Mapping, Union

from ...core.diagnostics import Diagnostic, did_you_mean
from ...core.graph import CircuitGraph, Edge, Node
from ...core.models import ALIASES, KNOWN_SHAPES, ModelRef, ShapeError, resolve_shape
from ...core.shapes import ModelShape, feeds
from ...core.spans import Span
from .names import edge_name, node_name, parse_edge_name, parse_node_name

Include = Union[str, int]  # "in_graph" | "all" | the number of top-scoring edges to keep

# At most this many diagnostics of one code are reported; the last says how many more.
MAX_PER_CODE = 10


# ---------------------------------------------------------------------------------
# locating keys in the raw text, for diagnostics
# ---------------------------------------------------------------------------------


class _Locator:
    """Spans in the JSON text: a key's first occurrence (after a section key), else line 1."""

    def __init__(self, text: str | None, source: str):
        self.text, self.source = text or "", source
        self.starts = [0] + [m.end() for m in re.finditer("\n", self.text)]

    def at(self, offset: int, length: int = 1) -> Span:
        line = bisect_right(self.starts, offset)
        column = offset - self.starts[line - 1] + 1
        return Span(self.source, line, column, line, column + max(length, 1))

    def key(self, name: str, section: str | None = None) -> Span:
        quoted = json.dumps(name)
        start = 0
        if section is not None:
            found = re.search(re.escape(json.dumps(section)) + r"\s*:", self.text)
            start = found.end() if found else 0
        found = re.compile(re.escape(quoted) + r"\s*:").search(self.text, start)
        if found is None and section is not None:
            found = re.compile(re.escape(quoted) + r"\s*:").search(self.text)
        if found is None:
            return Span(self.source, 1, 1, 1, 2)
        return self.at(found.start(), len(quoted))


class _Report:
    """Collects diagnostics, capping each code at MAX_PER_CODE."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self.counts: Counter[str] = Counter()

    def add(self, code: str, message: str, span: Span | Callable[[], Span], label: str = "",
            help: str | None = None) -> None:
        """Record a diagnostic; `span` may be a function, called only when the diagnostic is kept."""
        self.counts[code] += 1
        if self.counts[code] <= MAX_PER_CODE:
            self.items.append(Diagnostic(code, message, span if isinstance(span, Span) else span(), label, help))

    def finish(self) -> list[Diagnostic]:
        """The diagnostics by location; the last of a capped code says how many were left out."""
        out = sorted(self.items, key=Diagnostic.sort_key)
        for code, count in self.counts.items():
            if count > MAX_PER_CODE:
                i = max(k for k, d in enumerate(out) if d.code == code)
                d = out[i]
                out[i] = Diagnostic(d.code, f"{d.message} (and {count - MAX_PER_CODE} more like it)", d.span,
                                    d.label, d.help)
        return out

    def shown(self, code: str) -> bool:
        """Whether the next diagnostic of this code will be shown: compute its message (and
        its did-you-mean suggestion, slow for thousands of bad names) only then."""
        return self.counts[code] < MAX_PER_CODE

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)


# ---------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------


def read_mib(text: str, *, source: str, model: str | None = None, include: Include = "in_graph",
             name: str = "imported") -> tuple[CircuitGraph | None, list[Diagnostic]]:
    """Parse graph JSON text and convert it (`graph_from_mib`); invalid JSON is E601.

    >>> graph, diagnostics = read_mib('{"edges": {"a0.h1->logits": 1}', source="g.json")
    >>> graph, [(d.code, str(d.span)) for d in diagnostics]
    (None, [('E601', 'g.json:1:31')])
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        span = Span(source, err.lineno, err.colno, err.lineno, err.colno + 1)
        return None, [Diagnostic("E601", f"invalid JSON: {err.msg}", span, err.msg.lower(),
                                 "EAP-IG and MIB write graphs with Python's json.dump; is the file complete?")]
    except RecursionError:  # arrays or objects nested thousands deep: no graph is
        return None, [Diagnostic("E601", "invalid JSON: nested too deeply to read", Span(source, 1, 1, 1, 2),
                                 "nested too deeply", "a graph is three levels deep: cfg, nodes and edges")]
    return graph_from_mib(data, source=source, model=model, include=include, name=name, text=text)


def load_mib(path: str | Path, *, model: str | None = None, include: Include = "in_graph",
             name: str = "imported") -> tuple[CircuitGraph | None, list[Diagnostic]]:
    """Read a graph JSON file (E001/E002 when it cannot be read as UTF-8 text)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        return None, [Diagnostic("E001", f"cannot read {source}: {err.strerror or err}", Span(source, 0, 0, 0, 0))]
    except UnicodeDecodeError:
        return None, [Diagnostic("E002", f"{source} is not valid UTF-8 text", Span(source, 1, 1, 1, 2))]
    return read_mib(text, source=source, model=model, include=include, name=name)


def graph_from_mib(data: object, *, source: str, model: str | None = None, include: Include = "in_graph",
                   name: str = "imported", text: str | None = None) -> tuple[CircuitGraph | None, list[Diagnostic]]:
    """A circuit from EAP-IG/MIB graph JSON (already parsed), with each edge's score kept as
    the annotation `score`.

    `include` picks the edges: "in_graph" (those the file marks in the graph; the default),
    "all" (every edge listed), or an int k (the k edges of largest |score|, ties in canonical
    order). `model` names the model; without it the model is inferred from `cfg`. `text`,
    the raw JSON, lets diagnostics point at lines and columns. Returns (None, diagnostics)
    when there are errors.
    """
    loc = _Locator(text, source)
    report = _Report()
    top = Span(source, 1, 1, 1, 2)
    if not isinstance(data, dict):
        report.add("E602", f"expected a JSON object with `cfg`, `nodes` and `edges`, got {_kind(data)}", top,
                   "not an object")
        return None, report.finish()
    for key, required in (("cfg", False), ("nodes", False), ("edges", True)):
        if key in data and not isinstance(data[key], dict):
            report.add("E602", f"`{key}` must be an object, not {_kind(data[key])}", loc.key(key), "not an object")
        elif key not in data and required:
            report.add("E602", "the graph has no `edges` object", top, "no `edges`",
                       'graph JSON has the form {"cfg": {...}, "nodes": {...}, "edges": {...}}')
    if report.has_errors:
        return None, report.finish()
    cfg: dict = data.get("cfg") or {}
    shape = _shape(cfg, model, loc, report, top)
    if shape is None or report.has_errors:
        return None, report.finish()
    _check_nodes(data.get("nodes") or {}, shape, loc, report)
    chosen, scores = _read_edges(data["edges"], shape, include, loc, report, _fill(cfg))
    if report.has_errors:
        return None, report.finish()
    notes = {e: {"score": scores[e]} for e in chosen if scores.get(e) is not None}
    graph = CircuitGraph.from_edges(chosen, model=shape.name, name=name, annotations=notes)
    return graph, report.finish()


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _shape(cfg: dict, model: str | None, loc: _Locator, report: _Report, top: Span) -> ModelShape | None:
    """The model's shape: named (and checked against cfg), or inferred from cfg."""
    fields: dict[str, int] = {}
    for key in ("n_layers", "n_heads", "d_model"):
        if key in cfg:
            value = cfg[key]
            if isinstance(value, bool) or not isinstance(value, int):
                report.add("E602", f"cfg `{key}` must be a whole number, not {_kind(value)}", loc.key(key, "cfg"),
                           "not a whole number")
            else:
                fields[key] = value
    parallel = cfg.get("parallel_attn_mlp")
    if parallel is not None and not isinstance(parallel, bool):
        report.add("E602", "cfg `parallel_attn_mlp` must be true or false", loc.key("parallel_attn_mlp", "cfg"))
        parallel = None
    if report.has_errors:
        return None
    if model is not None:
        try:
            shape = resolve_shape(ModelRef(model, base_dir=Path.cwd()))
        except ShapeError as err:
            report.add(err.code, str(err), top, "", err.help)
            return None
        for key, value in fields.items():
            if getattr(shape, key) != value:
                report.add("E606", f"cfg says {key} = {value}, but {shape.name} has {getattr(shape, key)}",
                           loc.key(key, "cfg"), f"{shape.name}: {getattr(shape, key)}",
                           _suggest(fields, parallel) or "was the graph found on another model?")
        if parallel is not None and parallel != shape.parallel_attn_mlp:
            report.add("E606", f"cfg says parallel_attn_mlp = {str(parallel).lower()}, but {shape.name} "
                       f"{'runs' if shape.parallel_attn_mlp else 'does not run'} attention and MLP in parallel",
                       loc.key("parallel_attn_mlp", "cfg"), "", _suggest(fields, parallel))
        return shape
    named = cfg.get("model_name")
    if isinstance(named, str) and ALIASES.get(named, named) in KNOWN_SHAPES:
        return _shape(cfg, ALIASES.get(named, named), loc, report, top)
    candidates = _matching(fields, parallel)
    if not fields.get("n_layers") or not fields.get("n_heads") or not candidates:
        have = ", ".join(f"{k} = {v}" for k, v in fields.items()) or "no n_layers or n_heads"
        report.add("E607", f"cannot tell which model this graph is for (cfg: {have})",
                   loc.key("cfg") if "cfg" in loc.text else top, "which model?",
                   "name it with --model (`circ models` lists the known models)")
        return None
    return candidates[0]


def _matching(fields: Mapping[str, int], parallel: bool | None) -> list[ModelShape]:
    return [s for s in KNOWN_SHAPES.values()
            if all(getattr(s, k) == v for k, v in fields.items())
            and (parallel is None or s.parallel_attn_mlp == parallel)]


def _suggest(fields: Mapping[str, int], parallel: bool | None) -> str | None:
    names = [s.name for s in _matching(fields, parallel)] if fields.get("n_layers") else []
    return f"the cfg matches {', '.join(f'`{n}`' for n in names)}" if names else None


def _exists(node: Node, shape: ModelShape) -> bool:
    if node.kind == "head":
        return 0 <= node.layer < shape.n_layers and 0 <= node.head < shape.n_heads
    if node.kind == "mlp":
        return 0 <= node.layer < shape.n_layers and not shape.attn_only
    return True


def _in_format(node: Node, shape: ModelShape) -> bool:
    """Whether EAP-IG's graph of this shape has the node (it has MLPs even when the model has none)."""
    if node.kind == "mlp":
        return 0 <= node.layer < shape.n_layers
    return _exists(node, shape)


def _unknown(name: str, node: Node | None, shape: ModelShape) -> tuple[str, str | None]:
    """Message and help for a node name that the model does not have."""
    if node is None:
        names = [node_name(n) for n in shape.all_nodes()]
        return (f"unknown node `{name}`",
                did_you_mean(name, names) or "node names are `input`, `a{layer}.h{head}`, `m{layer}`, `logits`")
    if node.kind == "mlp" and shape.attn_only and node.layer < shape.n_layers:
        return f"`{name}` is an MLP, and {shape.name} is attention-only", "drop the edges that touch it"
    last = shape.n_layers - 1
    if not 0 <= node.layer < shape.n_layers:
        return f"`{name}` names layer {node.layer}, which {shape.name} does not have (layers 0-{last})", None
    return f"`{name}` names head {node.head}, which {shape.name} does not have (heads 0-{shape.n_heads - 1})", None


def _check_nodes(nodes: dict, shape: ModelShape, loc: _Locator, report: _Report) -> None:
    neurons = False
    for key, value in nodes.items():
        node = parse_node_name(key)
        if node is None or not _in_format(node, shape):
            message, help_ = _unknown(key, node, shape) if report.shown("E603") else ("", None)
            report.add("E603", message, lambda key=key: loc.key(key, "nodes"), "unknown node", help_)
            continue
        if isinstance(value, dict):
            if value.get("neurons") is not None and not neurons:
                neurons = True
                report.add("W610", "the graph has neuron-level masks; they are ignored (a .circ edge is a whole "
                           "component's output)", loc.key("neurons"), "neuron mask")
        elif not isinstance(value, bool) and value is not None:
            report.add("E602", f"node `{key}` must map to an object or a boolean, not {_kind(value)}",
                       lambda key=key: loc.key(key, "nodes"))


def _fill(cfg: dict) -> float | None:
    """The score `circ export` wrote for edges without one (its cfg key `unscored`), or None."""
    value = cfg.get("unscored")
    return None if isinstance(value, bool) else _finite(value) if isinstance(value, (int, float)) else None


def _read_edges(edges: dict, shape: ModelShape, include: Include, loc: _Locator,
                report: _Report, fill: float | None = None) -> tuple[list[Edge], dict[Edge, float | None]]:
    listed: list[tuple[Edge, bool]] = []
    scores: dict[Edge, float | None] = {}
    for key, value in edges.items():
        span = lambda key=key: loc.key(key, "edges")  # noqa: E731 - located only when reported
        if not isinstance(value, dict):
            report.add("E602", f"edge `{key}` must map to an object with `score` and `in_graph`, not "
                       f"{_kind(value)}", span)
            continue
        in_graph = value.get("in_graph", True)
        score = value.get("score")
        if not isinstance(in_graph, (bool, int)) or isinstance(in_graph, float):
            report.add("E602", f"edge `{key}`: `in_graph` must be true or false", span)
            continue
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            report.add("E602", f"edge `{key}`: `score` must be a number or null, not {_kind(score)}", span)
            continue
        edge = _edge(key, shape, span, report)
        if edge is None:
            continue
        listed.append((edge, bool(in_graph)))
        value = _finite(score)
        scores[edge] = None if fill is not None and value == fill else value
    if include == "in_graph":
        chosen = [e for e, flag in listed if flag]
    elif include == "all":
        chosen = [e for e, _ in listed]
    elif isinstance(include, int) and not isinstance(include, bool) and include >= 0:
        ranked = sorted((e for e, _ in listed if scores[e] is not None), key=Edge.sort_key)
        if listed and not ranked and include > 0:
            report.add("E611", f"--top {include} ranks edges by score, and none of the {len(listed)} edges listed "
                       "has one", lambda: loc.key("edges"), "no scores",
                       "import the edges marked in_graph (no --top), or every edge listed (--all)")
        ranked.sort(key=lambda e: -abs(scores[e]))  # type: ignore[arg-type]
        chosen = ranked[:include]
    else:
        raise ValueError(f"include must be 'in_graph', 'all' or a count >= 0, not {include!r}")
    # An MLP edge of an attention-only model is kept out unless chosen (then it is an error).
    bad = [e for e in chosen if not (_exists(e.sender, shape) and _exists(e.receiver, shape))]
    for e in bad:
        mlp = e.sender if e.sender.kind == "mlp" else e.receiver
        message, help_ = _unknown(node_name(mlp), mlp, shape)
        report.add("E603", f"edge `{edge_name(e)}`: {message}", lambda e=e: loc.key(edge_name(e), "edges"),
                   "not in the model",
                   help_)
    return chosen, scores


def _finite(score: object) -> float | None:
    """A score as a float, or None when it is null or not a finite number (NaN, or an
    integer too large for a float)."""
    if score is None:
        return None
    try:
        value = float(score)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _edge(key: str, shape: ModelShape, span: Callable[[], Span], report: _Report) -> Edge | None:
    parsed = parse_edge_name(key)
    if isinstance(parsed, str):
        report.add("E604", f"malformed edge name `{key}`: {parsed}", span, "malformed edge",
                   "edges are named `SENDER->RECEIVER`, with <q>, <k> or <v> on a head receiver")
        return None
    sender_name, receiver_name, channel = parsed
    nodes = []
    for part in (sender_name, receiver_name):
        node = parse_node_name(part)
        if node is None or not _in_format(node, shape):
            message, help_ = _unknown(part, node, shape) if report.shown("E603") else ("", None)
            report.add("E603", f"edge `{key}`: {message}", span, "unknown node", help_)
            return None
        nodes.append(node)
    sender, receiver = nodes
    if receiver.is_head and channel is None:
        report.add("E604", f"malformed edge name `{key}`: an edge into a head names its input", span,
                   "no <q>, <k> or <v>", f"write `{key}<q>`, `{key}<k>` or `{key}<v>`")
        return None
    if channel is not None and not receiver.is_head:
        report.add("E604", f"malformed edge name `{key}`: only heads have <q>, <k>, <v> inputs", span,
                   f"`{receiver_name}` is not a head", f"write `{sender_name}->{receiver_name}`")
        return None
    if not feeds(sender, receiver, shape):
        if sender.kind == "logits" or receiver.kind == "embed":
            why = "nothing leaves `logits` and nothing enters `input`"
        elif sender.layer == receiver.layer and sender.kind == "head" and receiver.kind == "mlp":
            why = f"{shape.name} runs attention and MLP in parallel, so a layer's heads do not feed its MLP"
        else:
            why = "the sender runs after the receiver"
        report.add("E605", f"edge `{key}` cannot exist in {shape.name}: {why}", span, "impossible edge")
        return None
    return Edge(sender, receiver, channel)


def import_header(source: str, graph: CircuitGraph, include: Include, inferred: bool) -> list[str]:
    """The comment lines `circ import` puts at the top of the .circ file it writes."""
    how = {"in_graph": "the edges marked in_graph", "all": "every edge listed"}.get(
        include if isinstance(include, str) else "", f"the top {include} edges by |score|")
    lines = [f"imported by `circ import` from {source} (EAP-IG/MIB graph JSON)",
             f"{len(graph.edges)} edges: {how}"]
    if graph.annotations:
        lines.append("[score = s]: the edge's `score` in the file")
    if inferred:
        lines.append(f"model {graph.model} inferred from the file's cfg")
    return lines
