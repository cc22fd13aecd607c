"""Stage 4, check: tasks and `check` blocks, validated and turned into specs.

Component and edge checks against the model happen while lowering (they need the
expansion); this stage checks what the evaluator will be asked to do: every task
names its data, ablation and metric correctly, every `check` pairs a circuit with a
task, and every `expect` clause is one the evaluator understands, with a sensible
bound. The result is a list of `CheckSpec`s, the evaluator's input.

>>> from circuitlang.lang.pipeline import compile_text
>>> result = compile_text('''model gpt2
... circuit c { L9.H6 -> logits }
... task t { data "x.jsonl"  metric logit_diff }
... check c on t { expect faithfulness >= 0.8 }''', check_files=False)
>>> [(s.circuit.name, s.task.metric, s.expects[0].kind) for s in result.checks]
[('c', 'logit_diff', 'faithfulness')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.ablations import ABLATIONS as ABLATION_REGISTRY
from ..core.ablations import DEFAULT as DEFAULT_ABLATION
from ..core.diagnostics import Diagnostic, did_you_mean
from ..core.graph import CircuitGraph, Node
from ..core.metrics import DEFAULT as DEFAULT_METRIC
from ..core.metrics import METRICS as METRIC_REGISTRY
from ..core.paths import is_file
from . import syntax as S
from .fmt import format_expr
from .lower import Lowerer, _Failed
from .resolve import Program, Scope, Symbol, Unit

# The words `ablation` and `metric` take: the names in the registries (core/ablations, core/metrics).
ABLATIONS: tuple[str, ...] = ABLATION_REGISTRY.names()
METRICS: tuple[str, ...] = METRIC_REGISTRY.names()
TASK_SETTINGS = ("data", "ablation", "metric", "positions", "seed")
SETTING_ALIASES = {"corrupt": "ablation", "corruption": "ablation", "dataset": "data", "position": "positions"}
CHECK_OPTIONS = ("ablation", "metric", "epsilon", "seed", "samples")

# kind -> (takes a subject, comparison: "required" | "optional" | "none", default comparison)
EXPECTATIONS: dict[str, tuple[bool, str, tuple[str, float] | None]] = {
    "faithfulness": (False, "required", None),
    "ratio": (False, "required", None),
    "gap": (False, "required", None),
    "completeness": (False, "required", None),
    "minimal": (False, "none", None),
    "necessary": (True, "optional", (">=", 0.5)),
    "sufficient": (False, "optional", (">=", 0.9)),
    "robust": (False, "none", None),
}
EXPECT_OPTIONS = {"minimal": ("epsilon", "mode"), "completeness": ("samples", "seed"), "necessary": (),
                  "sufficient": (), "faithfulness": (), "ratio": (), "gap": (), "robust": ()}
# `expect minimal with mode = ...`: each element removed from C alone, or Wang et al.'s stronger
# search for a node set K that makes each node matter (docs/evaluation.md, "Minimality").
MINIMALITY_MODES = ("single", "strong")


@dataclass(frozen=True)
class TaskSpec:
    """A task as the evaluator needs it."""

    name: str
    data: str | tuple[str, dict[str, object]] | None
    ablation: str = DEFAULT_ABLATION
    metric: str = DEFAULT_METRIC
    positions: tuple[str, ...] = ()
    seed: int = 0
    base_dir: Path = field(default=Path("."), compare=False)
    span: S.Span = field(default=S.NO_SPAN, compare=False)


@dataclass(frozen=True)
class ExpectSpec:
    kind: str
    subject: frozenset[Node] | None
    comparison: str | None
    bound: float | None
    options: dict[str, object] = field(default_factory=dict, hash=False)
    span: S.Span = field(default=S.NO_SPAN, compare=False)

    def __str__(self) -> str:
        subject = " " + ", ".join(sorted(str(n) for n in self.subject)) if self.subject else ""
        bound = f" {self.comparison} {self.bound:g}" if self.comparison and self.bound is not None else ""
        mode = f" with mode = {self.options['mode']}" if self.options.get("mode") not in (None, "single") else ""
        return f"{self.kind}{subject}{bound}{mode}"


@dataclass(frozen=True)
class CheckSpec:
    circuit: CircuitGraph
    task: TaskSpec
    expects: tuple[ExpectSpec, ...]
    options: dict[str, object] = field(default_factory=dict, hash=False)
    span: S.Span = field(default=S.NO_SPAN, compare=False)


class _Checker:
    def __init__(self, program: Program, lowerer: Lowerer, check_files: bool):
        self.program = program
        self.unit: Unit = program.root
        self.lowerer = lowerer
        self.check_files = check_files
        self.diagnostics: list[Diagnostic] = []
        self.tasks: dict[int, TaskSpec] = {}

    def error(self, code: str, message: str, span: S.Span, label: str = "", help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, label, help))

    # -- tasks -----------------------------------------------------------------------------
    def task(self, unit: Unit, task: S.TaskDef) -> TaskSpec:
        key = id(task)
        if key in self.tasks:
            return self.tasks[key]
        values: dict[str, S.Setting] = {}
        for setting in task.settings:
            key_name = setting.key
            if key_name not in TASK_SETTINGS:
                alias = SETTING_ALIASES.get(key_name)
                help_ = f"circuitlang calls it `{alias}`" if alias else did_you_mean(key_name, TASK_SETTINGS)
                self.error("E401", f"unknown task setting `{key_name}`", setting.span, "unknown setting",
                           help_ or f"settings are: {', '.join(TASK_SETTINGS)}")
                continue
            if key_name in values:
                self.error("E407", f"`{key_name}` is set twice", setting.span, "second setting")
                continue
            values[key_name] = setting
        spec = TaskSpec(
            name=task.name,
            data=self._data(unit, values.get("data"), task),
            ablation=self._choice(values.get("ablation"), ABLATIONS, DEFAULT_ABLATION),
            metric=self._choice(values.get("metric"), METRICS, DEFAULT_METRIC),
            positions=self._positions(values.get("positions")),
            seed=self._int(values.get("seed"), 0),
            base_dir=unit.base_dir,
            span=task.name_span,
        )
        self.tasks[id(task)] = spec
        return spec

    def _single(self, setting: S.Setting) -> S.Value | None:
        if len(setting.values) != 1:
            self.error("E402", f"`{setting.key}` takes one value, given {len(setting.values)}", setting.span,
                       "one value expected")
            return None
        return setting.values[0]

    def _data(self, unit: Unit, setting: S.Setting | None, task: S.TaskDef):
        if setting is None:
            self.error("E406", f"task `{task.name}` has no `data`", task.name_span, "no data",
                       'add `data "examples.jsonl"` or a generator such as `data induction(seq_len = 16)`')
            return None
        value = self._single(setting)
        if isinstance(value, S.String):
            if self.check_files and not is_file(unit.base_dir / value.value):
                self.error("E402", f"data file `{value.value}` does not exist", value.span, "not found",
                           f"paths are relative to {unit.display}")
            return value.value
        if isinstance(value, S.GenCall):
            kwargs = {kv.key: S.plain_value(kv.value) for kv in value.kwargs}
            return (value.name, kwargs)
        if isinstance(value, S.Ident):
            return (value.name, {})
        if value is not None:
            self.error("E402", "`data` is a file name in quotes or a generator call", setting.span, "not data")
        return None

    def _choice(self, setting: S.Setting | None, choices: tuple[str, ...], default: str) -> str:
        if setting is None:
            return default
        value = self._single(setting)
        if isinstance(value, S.Ident) and value.name in choices:
            return value.name
        shown = value.name if isinstance(value, S.Ident) else "this value"
        hint = did_you_mean(shown, choices) if isinstance(value, S.Ident) else None
        self.error("E402", f"`{setting.key}` cannot be `{shown}`", setting.span, "invalid value",
                   hint or f"choose one of: {', '.join(choices)}")
        return default

    def _positions(self, setting: S.Setting | None) -> tuple[str, ...]:
        if setting is None:
            return ()
        names = []
        for value in setting.values:
            if not isinstance(value, S.Ident):
                self.error("E402", "positions are names such as END or S1", setting.span, "not a name")
                continue
            names.append(value.name)
        return tuple(names)

    def _int(self, setting: S.Setting | None, default: int) -> int:
        if setting is None:
            return default
        value = self._single(setting)
        if isinstance(value, S.Number) and isinstance(value.value, int):
            return value.value
        self.error("E402", f"`{setting.key}` is a whole number", setting.span, "not an integer")
        return default

    # -- checks ----------------------------------------------------------------------------------
    def check(self, check: S.CheckDef) -> CheckSpec | None:
        scope = Scope(self.unit)
        task_sym = scope.lookup(check.task)
        task_spec = None
        if task_sym is None:
            pass  # reported as an unknown name by resolve
        elif not (isinstance(task_sym, Symbol) and task_sym.kind == "task"):
            self.error("E305", f"`{check.task}` is not a task", check.task.span, "not a task",
                       "`check CIRCUIT on TASK`: the name after `on` is a task")
        else:
            assert isinstance(task_sym.definition, S.TaskDef)
            task_spec = self.task(task_sym.unit, task_sym.definition)
        ctx = self.lowerer.top_context(self.unit)
        try:
            circuit = self.lowerer.circuit_of(check.target, ctx)
            if not isinstance(check.target, S.NameRef):
                # `check L9.H6 | L9.H9 on t` names the checked circuit after its expression.
                circuit = circuit.renamed(format_expr(check.target), circuit.doc)
        except _Failed:
            circuit = None
        options = self._options(check.options, CHECK_OPTIONS)
        expects = tuple(e for e in (self.expect(x, ctx, circuit) for x in check.expects) if e is not None)
        if circuit is not None and task_spec is not None:
            self._check_positions(circuit, task_spec, check)
        if circuit is None or task_spec is None:
            return None
        return CheckSpec(circuit, task_spec, expects, options, check.span)

    def _check_positions(self, circuit: CircuitGraph, task: TaskSpec, check: S.CheckDef) -> None:
        if not task.positions:
            return
        anchors = {e.position.anchor for e in circuit.edges if e.position is not None and e.position.is_named}
        for anchor in sorted(anchors):
            if anchor not in task.positions:
                self.error("E405", f"`{circuit.name or 'the circuit'}` uses position @{anchor}, which task "
                           f"`{task.name}` does not define", check.target.span, "unknown position",
                           f"task `{task.name}` defines: {', '.join(task.positions)}")

    def _options(self, options: tuple[S.KeyValue, ...], allowed: tuple[str, ...]) -> dict[str, object]:
        out: dict[str, object] = {}
        for kv in options:
            if kv.key not in allowed:
                hint = did_you_mean(kv.key, allowed)
                self.error("E408", f"unknown option `{kv.key}`", kv.span, "unknown option",
                           hint or (f"options here: {', '.join(allowed)}" if allowed else "no options here"))
                continue
            value = S.plain_value(kv.value)
            if kv.key == "ablation" and value not in ABLATIONS:
                self.error("E402", f"`ablation` cannot be `{value}`", kv.span, "invalid value",
                           f"choose one of: {', '.join(ABLATIONS)}")
            elif kv.key == "metric" and value not in METRICS:
                self.error("E402", f"`metric` cannot be `{value}`", kv.span, "invalid value",
                           f"choose one of: {', '.join(METRICS)}")
            elif kv.key == "mode" and value not in MINIMALITY_MODES:
                self.error("E402", f"`mode` cannot be `{value}`", kv.span, "invalid value",
                           f"choose one of: {', '.join(MINIMALITY_MODES)}")
            elif kv.key == "epsilon" and not (isinstance(value, (int, float)) and 0 <= value <= 1):
                self.error("E404", "`epsilon` is a number between 0 and 1", kv.span, "out of range")
            elif kv.key in ("seed", "samples") and not (isinstance(value, int) and value >= (kv.key == "samples")):
                self.error("E402", f"`{kv.key}` is a whole number" + (" above 0" if kv.key == "samples" else ""),
                           kv.span, "invalid value")
            out[kv.key] = value
        return out

    def expect(self, expect: S.Expect, ctx, circuit: CircuitGraph | None) -> ExpectSpec | None:
        rule = EXPECTATIONS.get(expect.kind)
        if rule is None:
            hint = did_you_mean(expect.kind, EXPECTATIONS)
            self.error("E403", f"unknown expectation `{expect.kind}`", expect.span, "unknown",
                       hint or f"expectations are: {', '.join(EXPECTATIONS)}")
            return None
        takes_subject, comparison_rule, default = rule
        ok = True
        if takes_subject and expect.subject is None:
            self.error("E403", f"`expect {expect.kind}` needs the nodes it is about", expect.span, "no subject",
                       f"for example `expect {expect.kind} L9.H6`")
            ok = False
        if not takes_subject and expect.subject is not None:
            self.error("E403", f"`expect {expect.kind}` is about the whole circuit and takes no nodes",
                       expect.subject.span, "unexpected subject")
            ok = False
        if comparison_rule == "required" and expect.comparison is None:
            self.error("E404", f"`expect {expect.kind}` needs a bound", expect.span, "no bound",
                       f"for example `expect {expect.kind} >= 0.9`" if expect.kind != "completeness" else
                       "for example `expect completeness <= 0.1`")
            ok = False
        if comparison_rule == "none" and expect.comparison is not None:
            assert expect.bound is not None
            self.error("E404", f"`expect {expect.kind}` takes no bound", expect.bound.span, "unexpected bound",
                       "set a threshold with `with epsilon = 0.01`" if expect.kind == "minimal" else None)
            ok = False
        bound = expect.bound.value if expect.bound is not None else None
        if expect.kind in ("faithfulness", "ratio", "sufficient", "necessary") and bound is not None \
                and not (-10 <= bound <= 10):
            self.error("E404", f"a bound of {bound:g} on {expect.kind} cannot be meant (1.0 is the whole model)",
                       expect.bound.span if expect.bound else expect.span, "out of range")
            ok = False
        if expect.kind in ("gap", "completeness") and bound is not None and bound < 0:
            self.error("E404", f"{expect.kind} is a distance and never negative", expect.span, "negative bound")
            ok = False
        options = self._options(expect.options, EXPECT_OPTIONS.get(expect.kind, ()))
        subject = None
        if expect.subject is not None and takes_subject:
            try:
                subject = frozenset(n for n, _ in self.lowerer.nodes_of(expect.subject, ctx))
            except _Failed:
                return None
            if circuit is not None and subject - circuit.nodes:
                missing = ", ".join(sorted(str(n) for n in subject - circuit.nodes))
                self.diagnostics.append(Diagnostic("W504", f"{missing} not in the circuit", expect.subject.span,
                                                   "not in the circuit",
                                                   "ablating nodes outside the circuit changes nothing"))
        if not ok:
            return None
        comparison = expect.comparison or (default[0] if default else None)
        if bound is None and default:
            bound = default[1]
        return ExpectSpec(expect.kind, subject, comparison, bound, options, expect.span)


def check_program(program: Program, lowerer: Lowerer, check_files: bool = True
                  ) -> tuple[list[CheckSpec], dict[str, TaskSpec], list[Diagnostic]]:
    """Validate the root file's tasks and checks; return the specs the evaluator runs."""
    checker = _Checker(program, lowerer, check_files)
    tasks: dict[str, TaskSpec] = {}
    checks: list[CheckSpec] = []
    for stmt in program.root.module.statements:
        if isinstance(stmt, S.TaskDef):
            tasks[stmt.name] = checker.task(program.root, stmt)
        elif isinstance(stmt, S.CheckDef):
            spec = checker.check(stmt)
            if spec is not None:
                checks.append(spec)
    return checks, tasks, checker.diagnostics
