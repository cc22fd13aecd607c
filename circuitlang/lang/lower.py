"""Stage 3, lower: evaluate groups and circuits into node sets and `CircuitGraph`s.

Expanding `L5..7.H*` needs the model's shape, so this stage is also where components
are checked against it (layers and heads exist, MLPs exist, channels only on heads)
and where edges are checked to run forward through the model.

Values of expressions:
- a node set: `frozenset[Port]`, a port being `(node, channel or None)`;
- a circuit: `CircuitGraph`.
A node set used where a circuit is expected is a node-level circuit: every edge among
its nodes, `embed` and `logits`. Between a circuit C and a node set N: `C | N` adds
N's node-level circuit, `C & N` keeps the part of C among N, `embed` and `logits`,
and `C - N` removes N's nodes (or, for `L9.H6.q`, that input) with their edges.

>>> from circuitlang.lang.parse import parse_text
>>> from circuitlang.lang.resolve import resolve_module
>>> module, _ = parse_text("model gpt2\\ncircuit c { L9.H* -> logits }")
>>> program, _ = resolve_module(module)
>>> circuits, diagnostics = lower_program(program)
>>> len(circuits["c"].edges)
12
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Union

from ..core.diagnostics import Diagnostic, Related
from ..core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from ..core.shapes import ModelShape, feeds
from . import syntax as S
from .resolve import Local, Program, Scope, Symbol, Unit, circuit_scope, failed_import, unknown_name

Port = tuple[Node, Union[str, None]]
NodeSet = frozenset
Value = Union[NodeSet, CircuitGraph]

# Bounds that keep lowering finite and its Python stack shallow whatever the input says:
# definitions nested deeper than this (a group defined by a group defined by ...) are
# E314; one component expansion or node-level circuit larger than these is E316 (the
# largest known model, pythia-12b, has 1,476 components and ~3.2M node-level edges).
MAX_DEFINITION_DEPTH = 32
MAX_EXPANSION = 100_000
MAX_NODE_LEVEL_EDGES = 5_000_000

_EMBED_SET: NodeSet = frozenset({(EMBED, None)})
_LOGITS_SET: NodeSet = frozenset({(LOGITS, None)})


class _Failed(Exception):
    """An expression could not be evaluated; its diagnostic is already recorded."""


class _TooDeep(_Failed):
    """Definitions nest past MAX_DEFINITION_DEPTH (E314): abandons the whole top-level
    definition rather than leaving partial, cached circuits along the chain."""


@dataclass
class _Context:
    """Where an expression is evaluated: its scope, the shape it expands against."""

    scope: Scope
    shape: ModelShape | None
    model: str | None
    bindings: dict[str, NodeSet] = field(default_factory=dict)
    groups: dict[str, NodeSet] = field(default_factory=dict)


class Lowerer:
    """Evaluates expressions with caching; records diagnostics instead of raising."""

    def __init__(self, program: Program):
        self.program = program
        self.diagnostics: list[Diagnostic] = []
        self._circuits: dict[tuple[int, str], CircuitGraph] = {}
        self._groups: dict[tuple[int, str], NodeSet] = {}
        self._calls: dict[tuple, CircuitGraph] = {}
        self._active: list[tuple] = []
        self._too_deep = False
        self._component_cache: dict[tuple, NodeSet] = {}
        self._channel_cache: dict[tuple, NodeSet] = {}
        self._port_cache: dict[tuple, NodeSet] = {}

    # -- entry points -------------------------------------------------------------------
    def top_context(self, unit: Unit) -> _Context:
        return _Context(Scope(unit), unit.shape, unit.model_name)

    def circuit(self, unit: Unit, definition: S.CircuitDef) -> CircuitGraph:
        """Lower a circuit without parameters (cached)."""
        key = (id(unit), definition.name)
        if key in self._circuits:
            return self._circuits[key]
        with self._entered(key, f"circuit `{definition.name}` refers to itself", definition.name_span):
            graph = self._lower_definition(definition, self.top_context(unit))
        self._circuits[key] = graph
        return graph

    def group(self, unit: Unit, definition: S.GroupDef) -> NodeSet:
        key = (id(unit), definition.name)
        if key in self._groups:
            return self._groups[key]
        with self._entered(key, f"group `{definition.name}` refers to itself", definition.name_span):
            value = self._members(definition.members, self.top_context(unit))
        self._groups[key] = value
        return value

    @contextmanager
    def _entered(self, key: tuple, cycle_message: str, span: S.Span, label: str = "defined in terms of itself"
                 ) -> Iterator[None]:
        """Evaluate one definition: E307 if it is already being evaluated (a cycle), E314
        if definitions are nested deeper than MAX_DEFINITION_DEPTH (reported once)."""
        if key in self._active:
            self._error("E307", cycle_message, span, label)
            raise _Failed
        if len(self._active) >= MAX_DEFINITION_DEPTH:
            if not self._too_deep:
                self._too_deep = True
                self._error("E314", f"definitions are nested more than {MAX_DEFINITION_DEPTH} deep", span,
                            f"{MAX_DEFINITION_DEPTH + 1} levels down",
                            "define the inner groups or circuits directly (`L5.H1 | L5.H2`) instead of "
                            "through a chain of names")
            raise _TooDeep
        self._active.append(key)
        try:
            yield
        finally:
            self._active.pop()

    def nodes_of(self, expr: S.Expr, ctx: _Context) -> NodeSet:
        """Evaluate an expression that must be a node set."""
        value = self.eval(expr, ctx)
        if isinstance(value, CircuitGraph):
            self._error("E305", "expected nodes here, found a circuit", _span(expr), "a circuit",
                        "circuits combine with `|`, `&`, `-` or `include`; edges connect nodes")
            raise _Failed
        return value

    def circuit_of(self, expr: S.Expr, ctx: _Context) -> CircuitGraph:
        """Evaluate an expression as a circuit (a node set becomes a node-level circuit)."""
        value = self.eval(expr, ctx)
        if isinstance(value, CircuitGraph):
            return value
        return self.node_level(value, ctx, _span(expr))

    # -- expressions -------------------------------------------------------------------------
    def eval(self, expr: S.Expr, ctx: _Context) -> Value:
        if isinstance(expr, S.ComponentRef):
            return self._component(expr, ctx)
        if isinstance(expr, S.NameRef):
            return self._name(expr, ctx)
        if isinstance(expr, S.Channel):
            return self._channel(expr, ctx)
        if isinstance(expr, S.SetOp):
            return self._setop(expr, ctx)
        if isinstance(expr, S.Call):
            return self._call(expr, ctx)
        raise TypeError(f"not an expression: {expr!r}")  # pragma: no cover

    def _component(self, ref: S.ComponentRef, ctx: _Context) -> NodeSet:
        # Keyed by plain ints and the shape's identity: hashing the IndexRange and ModelShape
        # dataclasses for each of a big file's 100,000 references cost a third of lowering.
        heads = ref.heads
        key = (ref.layers.lo, ref.layers.hi, heads is None, heads and heads.lo, heads and heads.hi, id(ctx.shape))
        cached = self._component_cache.get(key)
        if cached is not None:
            return cached
        shape = ctx.shape
        if shape is None and (ref.layers.is_star or (ref.heads is not None and ref.heads.is_star)):
            self._error("E212", f"`{ref}` needs the model's shape to expand", ref.span, "wildcard",
                        "declare the model with `model NAME` at the top of the file")
            raise _Failed
        layers = self._indices(ref.layers, shape.n_layers if shape else None, "layer", ref, ctx)
        heads_range = None if ref.heads is None else \
            self._indices(ref.heads, shape.n_heads if shape else None, "head", ref, ctx)
        self._bound_expansion(ref, len(layers) * (1 if heads_range is None else len(heads_range)), ctx)
        if ref.heads is None:
            if shape is not None and shape.attn_only:
                self._error("E209", f"{shape.name} is attention-only: it has no MLPs", ref.span, "no MLP here")
                raise _Failed
            value = frozenset((Node.mlp(layer), None) for layer in layers)
        else:
            assert heads_range is not None
            value = frozenset((Node.attn(layer, head), None) for layer in layers for head in heads_range)
        self._component_cache[key] = value
        return value

    def _bound_expansion(self, ref: S.ComponentRef, count: int, ctx: _Context) -> None:
        """E316 before enumerating more than MAX_EXPANSION components (a shape from a
        checkpoint config can claim any number of layers and heads)."""
        if count > MAX_EXPANSION:
            self._error("E316", f"`{ref}` expands to {count:,} components in {ctx.model or 'this model'} "
                        f"(at most {MAX_EXPANSION:,} are supported)", ref.span, "too many components",
                        "check the model's shape (`circ models`, or the checkpoint's config.json)")
            raise _Failed

    def _indices(self, index: S.IndexRange, count: int | None, what: str, ref: S.ComponentRef,
                 ctx: _Context) -> range:
        if index.lo is None:
            return range(count or 0)
        assert index.hi is not None
        if count is not None and index.hi >= count:
            model = ctx.model or "this model"
            code = "E201" if what == "layer" else "E202"
            plural = "layers" if what == "layer" else "heads per layer"
            bad = index.hi if index.lo == index.hi else f"{index.lo}..{index.hi}"
            help_ = None
            if index.lo == index.hi:
                fixed = S.ComponentRef(
                    S.IndexRange(count - 1, count - 1) if what == "layer" else ref.layers,
                    ref.heads if what == "layer" else S.IndexRange(count - 1, count - 1))
                help_ = f"did you mean `{fixed}`?" if index.lo == count else \
                    f"{model} has {what}s 0-{count - 1}"
            self._error(code, f"{what} {bad} does not exist in {model} ({count} {plural}: 0-{count - 1})",
                        ref.span, f"no {what} {index.hi}", help_)
            raise _Failed
        return range(index.lo, index.hi + 1)

    def _channel(self, expr: S.Channel, ctx: _Context) -> NodeSet:
        inner = self.nodes_of(expr.inner, ctx)
        key = (inner, expr.channel)  # big files name the same few hundred head inputs again and again
        cached = self._channel_cache.get(key)
        if cached is not None:
            return cached
        not_heads = sorted(str(n) for n, _ in inner if not n.is_head)
        if not_heads:
            self._error("E204", f"`.{expr.channel}` selects a head's input, but `{not_heads[0]}` is not a head",
                        expr.span, "not a head", "an MLP and `logits` have a single input: drop the channel")
            raise _Failed
        value = frozenset((node, expr.channel) for node, _ in inner)
        self._channel_cache[key] = value
        return value

    def _name(self, ref: S.NameRef, ctx: _Context) -> Value:
        if len(ref.parts) == 1 and ref.parts[0] in ctx.bindings:
            return ctx.bindings[ref.parts[0]]
        target = ctx.scope.lookup(ref)
        if target is None:
            self._unknown(ctx.scope, ref)
        if target == "embed":
            return _EMBED_SET
        if target == "logits":
            return _LOGITS_SET
        if isinstance(target, Local):
            return self._local(target, ref, ctx)
        assert isinstance(target, Symbol)
        return self._symbol(target, ref, ctx)

    def _unknown(self, scope: Scope, ref: S.NameRef) -> None:
        """E301, worded as `resolve` words it (so the two stages' reports merge), unless
        the name comes through an import that failed and is already reported."""
        if not failed_import(scope.unit, ref.parts[0]):
            self.diagnostics.append(unknown_name(scope, ref))
        raise _Failed

    def _local(self, local: Local, ref: S.NameRef, ctx: _Context) -> NodeSet:
        if local.kind == "param":
            # An uninstantiated motif body is checked with empty parameters.
            return ctx.bindings.get(local.name, frozenset())
        if local.name in ctx.groups:
            return ctx.groups[local.name]
        assert local.definition is not None
        key = (id(ctx), local.name)
        with self._entered(key, f"group `{local.name}` refers to itself", local.span):
            value = self._members(local.definition.members, ctx)
        ctx.groups[local.name] = value
        return value

    def _symbol(self, sym: Symbol, ref: S.NameRef, ctx: _Context) -> Value:
        self._check_same_model(sym, ref, ctx)
        if sym.kind == "group":
            assert isinstance(sym.definition, S.GroupDef)
            if sym.unit.shape is None and ctx.shape is not None:
                # A group from a model-less file expands against the user's model.
                key = ("group", id(sym.unit), sym.name, ctx.shape)
                with self._entered(key, f"group `{sym.name}` refers to itself", sym.definition.name_span):
                    return self._members(sym.definition.members, _Context(Scope(sym.unit), ctx.shape, ctx.model))
            return self.group(sym.unit, sym.definition)
        if sym.kind == "circuit":
            assert isinstance(sym.definition, S.CircuitDef)
            if sym.definition.is_motif:
                self._error("E306", f"`{ref}` is a parameterised circuit: call it with "
                            f"{len(sym.definition.params or ())} argument(s)", ref.span, "needs arguments",
                            f"write `{ref}({', '.join(sym.definition.params or ())})`")
                raise _Failed
            if sym.unit.shape is None and ctx.shape is not None:
                key = ("circuit", id(sym.unit), sym.name, ctx.shape)
                with self._entered(key, f"circuit `{sym.name}` refers to itself", sym.definition.name_span):
                    return self._lower_definition(sym.definition, _Context(Scope(sym.unit), ctx.shape, ctx.model))
            return self.circuit(sym.unit, sym.definition)
        what = "an imported file" if sym.kind == "module" else f"a {sym.kind}"
        self._error("E305", f"`{ref}` is {what}, not a circuit or group", ref.span, f"{sym.kind} name")
        raise _Failed

    def _check_same_model(self, sym: Symbol, ref: S.NameRef, ctx: _Context) -> None:
        theirs, ours = sym.unit.model_name, ctx.model
        if sym.unit is ctx.scope.unit or theirs is None or ours is None or theirs == ours:
            return
        if sym.kind == "circuit" and isinstance(sym.definition, S.CircuitDef) and sym.definition.is_motif:
            return  # a motif is instantiated in the caller's model
        self._error("E208", f"`{ref}` belongs to model {theirs}, but this file is about {ours}", ref.span,
                    f"from {theirs}", "import motifs (parameterised circuits) to reuse a shape across models")
        raise _Failed

    def _setop(self, expr: S.SetOp, ctx: _Context) -> Value:
        values = [self.eval(operand, ctx) for operand in expr.operands]
        result = values[0]
        for operand, value in zip(expr.operands[1:], values[1:]):
            result = self._combine(expr.op, result, value, operand, ctx)
        return result

    def _combine(self, op: str, left: Value, right: Value, right_expr: S.Expr, ctx: _Context) -> Value:
        if isinstance(left, frozenset) and isinstance(right, frozenset):
            return left | right if op == "|" else left & right if op == "&" else left - right
        if isinstance(left, CircuitGraph) and isinstance(right, CircuitGraph):
            return left | right if op == "|" else left & right if op == "&" else left - right
        if isinstance(left, CircuitGraph) and isinstance(right, frozenset):
            if op == "|":
                return left | self.node_level(right, ctx, _span(right_expr))
            if op == "&":
                return left.restricted_to({n for n, _ in right} | {EMBED, LOGITS})
            whole = {n for n, c in right if c is None}
            inputs = [(n, c) for n, c in right if c is not None]
            return left.without_nodes(whole).without_inputs(inputs)
        assert isinstance(left, frozenset) and isinstance(right, CircuitGraph)
        if op == "-":
            self._error("E305", "cannot remove a circuit from a set of nodes", _span(right_expr),
                        "a circuit", "put the circuit on the left: `circuit - nodes`")
            raise _Failed
        return self._combine(op, right, left, right_expr, ctx)

    def _call(self, call: S.Call, ctx: _Context) -> CircuitGraph:
        target = ctx.scope.lookup(call.callee)
        if not (isinstance(target, Symbol) and target.kind == "circuit"
                and isinstance(target.definition, S.CircuitDef) and target.definition.is_motif):
            if target is None:
                self._unknown(ctx.scope, call.callee)
            else:
                self._error("E305", f"`{call.callee}` is not a parameterised circuit", call.callee.span,
                            "cannot be called", "only circuits declared with parameters, `circuit name(a, b) {...}`, "
                            "can be called")
            raise _Failed
        motif = target.definition
        params = motif.params or ()
        if len(call.args) != len(params):
            self._error("E306", f"`{call.callee}` takes {len(params)} argument(s) ({', '.join(params)}), "
                        f"given {len(call.args)}", call.span, "wrong number of arguments",
                        related=(Related("declared here", motif.name_span),))
            raise _Failed
        args = tuple(self.nodes_of(arg, ctx) for arg in call.args)
        key = (id(target.unit), motif.name, args, ctx.shape)
        if key in self._calls:
            return self._calls[key]
        inner = _Context(circuit_scope(target.unit, motif), ctx.shape, ctx.model, dict(zip(params, args)))
        with self._entered(key, f"`{motif.name}` instantiates itself", call.span, "recursive call"):
            graph = self._lower_body(motif, inner)
        self._calls[key] = graph
        return graph

    def _members(self, members: Iterable[S.Expr], ctx: _Context) -> NodeSet:
        out: set[Port] = set()
        for member in members:
            out |= self.nodes_of(member, ctx)
        return frozenset(out)

    # -- circuits ------------------------------------------------------------------------------
    def _lower_definition(self, definition: S.CircuitDef, ctx: _Context) -> CircuitGraph:
        if definition.expr is not None:
            graph = self.circuit_of(definition.expr, ctx)
        else:
            inner = _Context(circuit_scope(ctx.scope.unit, definition), ctx.shape, ctx.model)
            graph = self._lower_body(definition, inner)
        return graph.renamed(definition.name, definition.doc)

    def _lower_body(self, definition: S.CircuitDef, ctx: _Context) -> CircuitGraph:
        edges: dict[Edge, S.Span] = {}
        annotations: dict[Edge, dict[str, object]] = {}
        listed: dict[Port, S.Span] = {}
        included: list[CircuitGraph] = []
        has_edges = failed = False
        reported_before = len(self.diagnostics)
        for stmt in definition.body or ():
            try:
                if isinstance(stmt, S.GroupDef):
                    self._local(Local("group", stmt.name, stmt, stmt.name_span), S.NameRef((stmt.name,)), ctx)
                elif isinstance(stmt, S.EdgeStmt):
                    has_edges = True
                    self._edge_stmt(stmt, ctx, edges, annotations)
                elif isinstance(stmt, S.NodeStmt):
                    for expr in stmt.nodes:
                        for port in self.nodes_of(expr, ctx):
                            listed.setdefault(port, _span(expr))
                elif isinstance(stmt, S.IncludeStmt):
                    has_edges = True
                    included.append(self.circuit_of(stmt.expr, ctx))
            except _TooDeep:
                raise
            except _Failed:
                failed = True
        if not has_edges and listed:
            graph = self.node_level(frozenset(listed), ctx, definition.name_span)
            return graph.renamed(definition.name, definition.doc)
        graph = CircuitGraph.from_edges(edges, (n for n, _ in listed), model=ctx.model, annotations=annotations)
        for other in included:
            graph = graph | other
        for (node, _), span in listed.items():
            if not any(node in (e.sender, e.receiver) for e in graph.edges):
                self._warn("W503", f"`{node}` has no edges in this circuit", span, "isolated node",
                           "an edge-level circuit lists edges; a circuit of nodes alone means all edges among them")
        failed = failed or any(d.is_error for d in self.diagnostics[reported_before:])
        if not graph.edges and not graph.nodes and definition.params is None and not failed:
            self._warn("W501", f"circuit `{definition.name}` is empty", definition.name_span, "no nodes or edges")
        return graph.renamed(definition.name, definition.doc)

    def _ports(self, expr: S.Expr, ctx: _Context) -> NodeSet:
        """`nodes_of` with a shortcut for what big files are made of, `L5.H1` and `L5.H1.q`:
        one cache lookup keyed by plain values instead of four nested evaluations."""
        kind = type(expr)
        if kind is S.Channel and type(expr.inner) is S.ComponentRef:
            ref, channel = expr.inner, expr.channel
        elif kind is S.ComponentRef:
            ref, channel = expr, None
        else:
            return self.nodes_of(expr, ctx)
        heads = ref.heads
        key = (ref.layers.lo, ref.layers.hi, heads is None, heads and heads.lo, heads and heads.hi, channel,
               id(ctx.shape))
        ports = self._port_cache.get(key)
        if ports is None:
            ports = self._port_cache[key] = self.nodes_of(expr, ctx)  # reports and raises as usual
        return ports

    def _edge_stmt(self, stmt: S.EdgeStmt, ctx: _Context, edges: dict[Edge, S.Span],
                   annotations: dict[Edge, dict[str, object]]) -> None:
        senders: list[tuple[Node, S.Expr]] = []
        for expr in stmt.sources:
            for node, channel in sorted(self._ports(expr, ctx), key=_port_key):
                if channel is not None:
                    self._error("E211", f"`{node}.{channel}` is an input; an edge's source is a node's output",
                                _span(expr), "channel on a source", f"write `{node}`")
                    raise _Failed
                if node == LOGITS:
                    self._error("E206", "`logits` is the model's output: it sends to nothing", _span(expr),
                                "cannot be a source")
                    raise _Failed
                senders.append((node, expr))
        repeated = produced = pairs = 0
        shared_warned: set[tuple[Node, str]] = set()
        grouped = ctx.shape is not None and ctx.shape.kv_group > 1  # else a port is its receiver
        for target in stmt.targets:
            ports = self._ports(target.expr, ctx)
            if len(ports) > 1:
                ports = _whole_nodes_absorb(ports)
            if (EMBED, None) in ports:
                self._error("E206", "`embed` is the model's input: nothing sends to it", target.span,
                            "cannot be a target")
                raise _Failed
            position = target.position.value if target.position is not None else None
            notes = {kv.key: S.plain_value(kv.value) for kv in target.annotations}
            single_target = len(ports) == 1
            for receiver, channel in (ports if single_target else sorted(ports, key=_port_key)):
                channels = (channel,) if channel else (S.CHANNELS if receiver.is_head else (None,))
                for sender, source_expr in senders:
                    pairs += 1
                    if not feeds(sender, receiver, ctx.shape):
                        if single_target and _is_single(source_expr):
                            self._backward(sender, receiver, ctx, target.span)
                        continue
                    for ch in channels:
                        if grouped:
                            port, port_channel = ctx.shape.port(receiver, ch)
                            if channel and port != receiver and (receiver, ch) not in shared_warned:
                                shared_warned.add((receiver, ch))
                                self._shared_input(receiver, port, ch, ctx.shape.kv_group, target.span)
                        else:
                            port, port_channel = receiver, ch
                        edge = Edge(sender, port, port_channel, position)
                        produced += 1
                        if edge in edges:
                            repeated += 1
                        else:
                            edges[edge] = stmt.span
                        if notes:
                            annotations[edge] = notes
        if produced == 0 and pairs:
            self._error("E207", "no edges: every source comes after every target", stmt.span,
                        "nothing flows this way", "edges run from earlier layers to later ones")
            raise _Failed
        elif repeated:
            self._warn("W502", f"{repeated} edge(s) of this statement are already in the circuit", stmt.span,
                       "duplicate edges")

    def _shared_input(self, receiver: Node, port: Node, channel: str, group: int, span: S.Span) -> None:
        last = port.head + group - 1
        what = "key" if channel == "k" else "value"
        self._warn("W214", f"`{receiver}.{channel}` is the {what} input that heads {port.head}-{last} of layer "
                   f"{port.layer} share (grouped-query attention); it is written `{port}.{channel}`", span,
                   f"shared {what} input", "an edge into one head's key or value input is an edge into its "
                   "group's: see docs/models.md, \"Grouped-query attention\"")

    def _backward(self, sender: Node, receiver: Node, ctx: _Context, span: S.Span) -> None:
        if sender == receiver:
            why = "a component does not feed its own input"
        elif sender.layer == receiver.layer and sender.is_head and receiver.kind == "mlp":
            why = f"{ctx.model} runs attention and MLP in parallel, so `{sender}` does not feed `{receiver}`"
        elif sender.layer == receiver.layer:
            why = f"`{sender}` and `{receiver}` are in the same layer; `{sender}` is computed after `{receiver}`'s input" \
                if sender.kind == "mlp" else f"`{sender}` and `{receiver}` read the same residual stream"
        else:
            why = f"layer {sender.layer} comes after layer {receiver.layer}"
        self._error("E205", f"edge `{sender} -> {receiver}` goes backwards: {why}", span, "backwards edge",
                    "a head or MLP in layer l feeds layers after l (and attention feeds the MLP of its own layer)")
        raise _Failed

    def node_level(self, ports: NodeSet, ctx: _Context, span: S.Span) -> CircuitGraph:
        """All edges among these nodes, `embed` and `logits` (q, k and v unless a channel is named)."""
        nodes = {n for n, _ in ports} | {EMBED, LOGITS}
        senders = sorted(n for n in nodes if n.is_sender)
        receivers = set(ports) | {(LOGITS, None)}
        estimate = len(senders) * sum(1 if c or not n.is_head else 3 for n, c in receivers) // 2
        if estimate > MAX_NODE_LEVEL_EDGES:
            self._error("E316", f"a circuit of all edges among {len(nodes):,} nodes would have about "
                        f"{estimate:,} edges (at most {MAX_NODE_LEVEL_EDGES:,} are supported)", span,
                        "too many edges", "list the edges the circuit has instead of all edges among its nodes")
            raise _Failed
        edges = []
        for receiver, channel in receivers:
            if receiver == EMBED:
                continue
            channels = (channel,) if channel else (S.CHANNELS if receiver.is_head else (None,))
            for sender in senders:
                if feeds(sender, receiver, ctx.shape):
                    edges.extend(Edge(sender, *(ctx.shape.port(receiver, ch) if ctx.shape else (receiver, ch)))
                                 for ch in channels)
        return CircuitGraph.from_edges(edges, nodes, model=ctx.model, level="node")

    # -- diagnostics ---------------------------------------------------------------------------
    def _error(self, code: str, message: str, span: S.Span, label: str = "", help: str | None = None,
               related: tuple[Related, ...] = ()) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, label, help, related))

    _warn = _error


def _span(expr: S.Expr) -> S.Span:
    return expr.span


def _is_single(expr: S.Expr) -> bool:
    return isinstance(expr, S.ComponentRef) and expr.is_single or \
        isinstance(expr, S.NameRef) and expr.parts in (("embed",), ("logits",))


def _port_key(port: Port) -> tuple:
    """Sorts ports whatever their channel (a node's whole input sorts before its channels)."""
    return (port[0], port[1] or "")


def _whole_nodes_absorb(ports: NodeSet) -> NodeSet:
    """Drop `(head, channel)` ports whose head is also listed whole: `L1.H3.q | L1.H3` as
    a target means all of L1.H3's inputs once, not its query input twice."""
    whole = {node for node, channel in ports if channel is None}
    if not whole or len(whole) == len(ports):
        return ports
    return frozenset(p for p in ports if p[1] is None or p[0] not in whole)


def lower_program(program: Program, lowerer: Lowerer | None = None
                  ) -> tuple[dict[str, CircuitGraph], list[Diagnostic]]:
    """Lower every circuit of the root file (motifs are checked with empty arguments).

    Pass a `Lowerer` to share its caches with later stages (`check`).
    """
    lowerer = lowerer or Lowerer(program)
    unit = program.root
    circuits: dict[str, CircuitGraph] = {}
    for stmt in unit.module.statements:
        try:
            if isinstance(stmt, S.GroupDef) and unit.symbols.get(stmt.name, None) is not None:
                lowerer.group(unit, stmt)
            elif isinstance(stmt, S.CircuitDef) and unit.symbols.get(stmt.name) is not None:
                if unit.symbols[stmt.name].definition is not stmt:
                    continue  # a duplicate definition, already reported
                if stmt.is_motif:
                    ctx = _Context(circuit_scope(unit, stmt), unit.shape, unit.model_name)
                    lowerer._lower_body(stmt, ctx)
                else:
                    circuits[stmt.name] = lowerer.circuit(unit, stmt)
        except _Failed:
            continue
    return circuits, lowerer.diagnostics


def groups_of(program: Program, circuit_name: str | None = None) -> dict[str, frozenset[Node]]:
    """The root file's groups and, if named, one circuit's local groups, as node sets.

    Rendering draws these as clusters. Groups that fail to evaluate are left out (their
    diagnostics come from `lower_program`).
    """
    lowerer = Lowerer(program)
    unit = program.root
    groups: dict[str, frozenset[Node]] = {}
    for stmt in unit.module.statements:
        try:
            if isinstance(stmt, S.GroupDef):
                groups[stmt.name] = frozenset(n for n, _ in lowerer.group(unit, stmt))
            elif isinstance(stmt, S.CircuitDef) and stmt.name == circuit_name and stmt.body:
                ctx = _Context(circuit_scope(unit, stmt), unit.shape, unit.model_name)
                for local in stmt.body:
                    if isinstance(local, S.GroupDef):
                        groups[local.name] = frozenset(n for n, _ in lowerer.nodes_of(S.NameRef((local.name,)), ctx))
        except _Failed:
            continue
    return groups
