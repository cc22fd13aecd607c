"""Hypothesis strategies for circuitlang syntax trees, shared by the property and fuzz tests.

`modules()` draws a whole `syntax.Module` whose statements cover every construct of
the grammar: model declarations, imports, groups, block circuits (with parameters,
docs and bodies of edges, nodes, local groups and includes), circuit aliases, tasks
and checks. Expressions (`exprs()`) nest components, names, calls, channels and set
operations; values (`values()`) cover numbers, strings, bare words and generator calls.

Every tree drawn here can be written as .circ text: the strategies only produce
trees that the formatter can print and the parser can read back, so that
`parse(format(tree)) == tree` is a fair property. What that rules out:

* names that are reserved (`embed`, `logits`, `q`, `k`, `v`; the first two may still be
  *referred to*, as nodes). Keywords (`model`, `import`, `as`, `group`, `circuit`,
  `include`, `task`, `check`, `on`, `with`, `expect`) are legal names of groups,
  circuits, tasks and parameters, and are drawn there and as references
  (`binding_names`): the formatter writes them in parentheses where they are
  expressions. Elsewhere (setting keys, options, imports) the grammar cannot always
  tell them from the keyword, so they are not drawn there;
* a qualified name whose later parts are `q`/`k`/`v` (that text is a channel) or whose
  first two parts read as a component (`L5.H1`);
* unquoted model names that are not model-name tokens;
* set operations with fewer than two operands;
* runs of imports that are not sorted: `fmt` sorts them (by design), so trees with
  unsorted runs are not fixed points. `sort_import_runs` puts a drawn module in order.

Generated names carry an `n_` prefix or come from a small list of awkward but legal
names (`L5`, `H1`, `MLP`, `Lx`, `_`) or the keywords, so they never read as components.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from circuitlang.lang import syntax as S
from circuitlang.lang.fmt import _import_text

KEYWORDS = frozenset({"model", "import", "as", "group", "circuit", "include", "task", "check", "on", "with",
                      "expect"})
RESERVED = frozenset({"embed", "logits", "q", "k", "v"})

# Legal names that look like something else: a layer without a head, a head without a
# layer, the MLP word, a lone underscore.
AWKWARD_NAMES = ("L5", "L12", "H1", "MLP", "Lx", "_", "_1", "L", "Hx", "N")

# A small pool makes definitions and references meet (duplicates, cycles, motif calls),
# so the compiler gets past "unknown name" when the fuzzer feeds it a drawn module.
POOL_NAMES = ("n_a", "n_b", "n_c")

plain_names = st.text("abcxyz019_", max_size=6).map(lambda s: "n_" + s)
# Keywords are legal names (docs/language.md); as expressions they need parentheses.
KEYWORD_NAMES = tuple(sorted(KEYWORDS))

names = st.one_of(st.sampled_from(POOL_NAMES), plain_names, st.sampled_from(AWKWARD_NAMES))
binding_names = st.one_of(names, st.sampled_from(KEYWORD_NAMES))

# Strings: quotes, backslashes, newlines, tabs, unicode, control characters. Surrogates
# are left out (they cannot be written to a UTF-8 file, so no .circ file holds them).
_NASTY_TEXT = st.sampled_from(['"', "\\", "\n", "\t", "\\n", '\\"', "é", "→", "😀", "\x00", "//", "}", " "])
texts = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.lists(_NASTY_TEXT, max_size=6).map("".join),
)

# Mostly indices that exist in small models, sometimes ones that do not.
small_ints = st.one_of(st.integers(min_value=0, max_value=2), st.integers(min_value=0, max_value=60))


# ---------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------


@st.composite
def index_ranges(draw: st.DrawFn) -> S.IndexRange:
    kind = draw(st.sampled_from(["single", "range", "star"]))
    if kind == "star":
        return S.IndexRange(None, None)
    lo = draw(small_ints)
    if kind == "single":
        return S.IndexRange(lo, lo)
    return S.IndexRange(lo, lo + draw(st.integers(min_value=0, max_value=12)))


@st.composite
def component_refs(draw: st.DrawFn) -> S.ComponentRef:
    layers = draw(index_ranges())
    heads = draw(st.one_of(st.none(), index_ranges()))
    return S.ComponentRef(layers, heads)


@st.composite
def name_refs(draw: st.DrawFn, allow_builtins: bool = True) -> S.NameRef:
    if allow_builtins and draw(st.integers(0, 9)) == 0:
        return S.NameRef((draw(st.sampled_from(["embed", "logits"])),))
    first = draw(binding_names)
    # Later parts of a dotted name are plain names: `L5.H1` would read as a component.
    rest = draw(st.lists(plain_names, max_size=2))
    return S.NameRef((first, *rest))


def _channels(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(S.Channel, inner, st.sampled_from(S.CHANNELS))


def _calls(args: st.SearchStrategy) -> st.SearchStrategy:
    callee = st.builds(lambda first, rest: S.NameRef((first, *rest)), names, st.lists(plain_names, max_size=1))
    return st.builds(S.Call, callee, st.lists(args, max_size=3).map(tuple))


def _setops(operands: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(S.SetOp, st.sampled_from(["|", "&", "-"]), st.lists(operands, min_size=2, max_size=4).map(tuple))


atoms = st.one_of(component_refs(), name_refs())

exprs: st.SearchStrategy = st.recursive(
    st.one_of(atoms, _channels(st.one_of(component_refs(), name_refs(allow_builtins=False)))),
    lambda inner: st.one_of(_setops(inner), _calls(inner), _channels(inner)),
    max_leaves=8,
)


# ---------------------------------------------------------------------------------
# Values, positions, targets
# ---------------------------------------------------------------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64).filter(math.isfinite)
numbers = st.one_of(
    st.integers(min_value=-10**12, max_value=10**12).map(lambda v: S.Number(v)),
    finite_floats.map(lambda v: S.Number(v)),
)
strings = texts.map(S.String)
idents = names.map(S.Ident)

values: st.SearchStrategy = st.recursive(
    st.one_of(numbers, strings, idents),
    lambda inner: st.builds(S.GenCall, plain_names,
                            st.lists(st.builds(S.KeyValue, names, inner), max_size=3).map(tuple)),
    max_leaves=5,
)
key_values = st.builds(S.KeyValue, names, values)

positions = st.builds(
    S.Position,
    st.one_of(st.builds(str.__add__, st.sampled_from(["END", "S", "_", "x"]), st.text("AZaz09_", max_size=4)),
              st.integers(-20, 20)),
    st.integers(-5, 5),
)

targets = st.builds(
    S.Target,
    exprs,
    st.one_of(st.none(), positions),
    st.lists(key_values, max_size=2).map(tuple),
)


# ---------------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------------

# Bare model names as the grammar reads them (`//` would start a comment).
model_names = st.builds(str.__add__, st.sampled_from(["gpt2", "zoo", "a", "0", "_"]),
                        st.text("az09_.:/-", max_size=15)).filter(lambda name: "//" not in name)
model_decls = st.one_of(
    st.builds(S.ModelDecl, model_names, st.just(False)),
    st.builds(S.ModelDecl, texts, st.just(True)),
)

import_decls = st.one_of(
    st.builds(lambda parts, alias: S.ImportDecl(tuple(parts), None, alias),
              st.lists(names, min_size=1, max_size=3), st.one_of(st.none(), names)),
    st.builds(lambda path, alias: S.ImportDecl(None, path, alias), texts, st.one_of(st.none(), names)),
)

group_defs = st.builds(S.GroupDef, binding_names, st.lists(exprs, min_size=1, max_size=4).map(tuple))

edge_stmts = st.builds(
    S.EdgeStmt,
    st.lists(exprs, min_size=1, max_size=3).map(tuple),
    st.lists(targets, min_size=1, max_size=4).map(tuple),
)
node_stmts = st.builds(S.NodeStmt, st.lists(exprs, min_size=1, max_size=3).map(tuple))
include_stmts = st.builds(S.IncludeStmt, exprs)
body_stmts = st.one_of(edge_stmts, node_stmts, include_stmts, group_defs)

docs = st.one_of(st.none(), texts)

block_circuits = st.builds(
    S.CircuitDef,
    binding_names,
    st.one_of(st.none(), st.lists(binding_names, max_size=3).map(tuple)),
    docs,
    st.lists(body_stmts, max_size=5).map(tuple),
)
alias_circuits = st.builds(
    lambda name, doc, expr: S.CircuitDef(name, None, doc, None, expr),
    binding_names, docs, exprs,
)

settings = st.builds(S.Setting, names, st.lists(values, min_size=1, max_size=3).map(tuple))
task_defs = st.builds(S.TaskDef, binding_names, docs, st.lists(settings, max_size=5).map(tuple))


@st.composite
def expects(draw: st.DrawFn) -> S.Expect:
    kind = draw(st.one_of(st.sampled_from(["faithfulness", "minimal", "necessary", "completeness", "sufficient"]),
                          names))
    subject = draw(st.one_of(st.none(), exprs))
    comparison = bound = None
    if draw(st.booleans()):
        comparison = draw(st.sampled_from([">=", "<=", ">", "<"]))
        bound = draw(numbers)
    options = tuple(draw(st.lists(key_values, max_size=2)))
    return S.Expect(kind, subject, comparison, bound, options)


check_defs = st.builds(
    S.CheckDef,
    exprs,
    name_refs(allow_builtins=False),
    st.lists(key_values, max_size=2).map(tuple),
    st.lists(expects(), max_size=4).map(tuple),
)

statements = st.one_of(model_decls, import_decls, group_defs, block_circuits, alias_circuits, task_defs,
                       check_defs)


def sort_import_runs(stmts: list) -> tuple:
    """Sort each run of consecutive imports as `fmt` does, so the module is a fixed point."""
    out: list = []
    run: list = []
    for stmt in [*stmts, None]:
        if isinstance(stmt, S.ImportDecl):
            run.append(stmt)
            continue
        out += sorted(run, key=_import_text)
        run = []
        if stmt is not None:
            out.append(stmt)
    return tuple(out)


def modules(max_statements: int = 8) -> st.SearchStrategy:
    """A whole module: a mix of every kind of top-level statement, import runs sorted."""
    return st.lists(statements, max_size=max_statements).map(lambda stmts: S.Module(sort_import_runs(stmts)))


# ---------------------------------------------------------------------------------
# Whole programs as text: keyword names, several statements per line
# ---------------------------------------------------------------------------------

_LOW_HEADS, _HIGH_HEADS = ("L0.H0", "L0.H1", "L0.H2"), ("L1.H1", "L1.H3")
# How two statements are separated in the text: on one line, or not.
_SEPARATORS = st.sampled_from([" ", " ", "  ", "\n", "\n\n", "\n    "])


def _ref(name: str) -> str:
    """A reference to a defined name as an author writes it: a keyword in parentheses."""
    return f"({name})" if name in KEYWORDS else name


@st.composite
def keyword_programs(draw: st.DrawFn) -> str:
    """The text of a program for `zoo:induction-2l` whose groups and circuits are named by
    keywords as well as plain names, referred to in parentheses (`(group) -> logits`,
    `include (with)`, `expect necessary (expect)`), with statements often several to a
    line. Most compile cleanly; the rest get the same diagnostics before and after `fmt`."""
    pool = list(KEYWORD_NAMES) + ["n_a", "n_b", "n_c", "L5"]
    chosen = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=6, unique=True))
    split = draw(st.integers(1, len(chosen) - 1))
    groups, circuits = chosen[:split], chosen[split:]
    # Groups of layer 0 send, groups of layer 1 receive: most edges go forwards.
    low, high = groups[::2], groups[1::2]
    heads = st.sampled_from(_LOW_HEADS + _HIGH_HEADS)
    senders = st.one_of(st.sampled_from(_LOW_HEADS), st.just("embed"), st.sampled_from(low).map(_ref))
    receivers = st.one_of(st.sampled_from(_HIGH_HEADS), st.just("logits"),
                          *([st.sampled_from(high).map(_ref), st.sampled_from(high).map(lambda g: f"{_ref(g)}.q")]
                            if high else []))
    pieces = ["model zoo:induction-2l"]
    for name in groups:
        layer = _LOW_HEADS if name in low else _HIGH_HEADS
        members = draw(st.lists(st.sampled_from(layer), min_size=1, max_size=3, unique=True))
        pieces.append(f"group {name} = {', '.join(members)}")
    for i, name in enumerate(circuits):
        body = []
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["edge", "edge", "node", "include", "group"]))
            if kind == "include" and i > 0:
                body.append(f"include {_ref(draw(st.sampled_from(circuits[:i])))}")
            elif kind == "node":
                body.append(draw(st.sampled_from(groups).map(_ref)))
            elif kind == "group":
                local = draw(st.sampled_from(["n_local", "with", "expect", "on"]))
                if all(local not in line for line in body):
                    body.append(f"group {local} = {draw(heads)}")
            else:
                body.append(f"{draw(senders)} -> {draw(receivers)}")
        inner = "".join(draw(_SEPARATORS) + stmt for stmt in body)
        pieces.append(f"circuit {name} {{{inner}{draw(_SEPARATORS)}}}")
    if draw(st.booleans()):
        target, subject = draw(st.sampled_from(circuits)), draw(st.sampled_from(groups))
        pieces.append('task t { data "t.jsonl" metric logit_diff }')
        pieces.append(f"check {_ref(target)} on t {{ expect necessary {_ref(subject)} expect sufficient }}")
    text = pieces[0]
    for piece in pieces[1:]:
        text += draw(_SEPARATORS) + piece
    return text + "\n"
