"""`circ discover`: find a circuit on a model and task, and write it as a .circ file.

Methods (circuitlang.discovery.methods): `eap-ig` (default), `eap`, `exact` rank every
edge of the model; a circuit is then chosen by `--edges K`, `--threshold T` or
`--target F` (the smallest top-k circuit whose *measured* faithfulness reaches F,
circuitlang.discovery.select.select_by_target). `acdc` prunes the whole model receiver by
receiver with `--tau`. The chosen circuit is then pruned of the edges it cannot use
(circuitlang.core.analysis; `--no-prune` keeps them). What was chosen and why (k, its
measured f, the target, whether every k was measured, pruning, warnings) goes to standard
error, the written file's header, and `--json`. Imports torch only when it runs (or when
`--method`'s choices are listed).
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import click

from ..core.ablations import ABLATIONS
from ..core.errors import CircuitlangError
from ..core.metrics import METRICS
from ..core.paths import path_from
from .common import (ProgressBar, UsageError, check_plot_name, check_writable, compile_or_fail, model_options,
                     write_output, write_plot)

EXAMPLES = """
\b
Examples:
  circ discover --task stdlib/zoo/induction.circ:repeat_tokens_zero --edges 7 -o found.circ
  circ discover --task stdlib/zoo/induction.circ:repeat_tokens --method acdc --tau 0.02
  circ discover --task stdlib/zoo/mlp_planted.circ:mod_sum_zero --target 0.95 \\
      --curve curve.json --plot curve.svg -o found.circ
  circ discover --task stdlib/zoo/induction_trained.circ:repeat_tokens --method exact \\
      --json why.json -o found.circ
"""


class MethodChoice(click.Choice):
    """The registered discovery methods, looked up when first needed (the registry's
    modules import torch, which the other commands must not pay for)."""

    def __init__(self) -> None:
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        from ..discovery.methods import METHODS

        return METHODS.names()


def _task(spec: str):
    """Compile FILE and return it with its task TASK (FILE:TASK, or the only task of FILE)."""
    path_text, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    compiled = compile_or_fail(Path(path_text or spec), check_files=True)
    if not name:
        if len(compiled.tasks) != 1:
            raise UsageError(f"{compiled.path} has {len(compiled.tasks)} tasks; name one as {compiled.path}:TASK")
        name = next(iter(compiled.tasks))
    if name not in compiled.tasks:
        raise UsageError(f"no task `{name}` in {compiled.path}; it has: {', '.join(compiled.tasks) or 'none'}")
    return compiled, compiled.tasks[name]


@click.command("discover", epilog=EXAMPLES)
@click.option("--task", "task_spec", required=True, help="FILE:TASK — the task (its data, ablation, metric).")
@click.option("--model", "model_name", help="The model (default: the task file's model); one of its shape when the "
              "task file names a model (E215 otherwise).")
@click.option("--method", type=MethodChoice(), default="eap-ig", show_default=True)
@click.option("--edges", "k", type=click.IntRange(1), help="Keep the K best-scored edges.")
@click.option("--threshold", type=float, help="Keep the edges scored at least this.")
@click.option("--target", type=float, help="Keep the fewest top edges whose measured faithfulness reaches this "
              "[default: 0.95].")
@click.option("--curve-points", type=click.IntRange(2), default=128, show_default=True,
              help="--target: evaluate at most this many top-k circuits; every k when the ranking has no more "
              "edges than this, else a grid refined where the target can first be reached.")
@click.option("--prune/--no-prune", default=None,
              help="Remove the edges the chosen circuit cannot use: into nodes with no path to logits, and, "
              "under resample ablation, out of nodes no path from embed feeds (exact: f is unchanged). "
              "Default: on with --target and acdc, off with --edges and --threshold (you get the edges you "
              "asked for).")
@click.option("--tau", type=click.FloatRange(0), default=0.01, show_default=True,
              help="acdc: remove an edge when it changes faithfulness by less than this.")
@click.option("--steps", type=click.IntRange(1), default=5, show_default=True, help="eap-ig: integration steps.")
@click.option("--ablation", type=click.Choice(ABLATIONS.names()), help="Override the task's ablation.")
@click.option("--metric", type=click.Choice(METRICS.names()), help="Override the task's metric.")
@click.option("--name", default="found", show_default=True,
              help="Name of the circuit written (letters, digits and _, not a keyword).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the .circ here (default: stdout).")
@click.option("--curve", "curve_path", type=click.Path(path_type=Path),
              help="Write the faithfulness curve over MIB's edge fractions, with CPR and CMD, as JSON.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              help="Draw that curve here: .svg, or .png/.pdf (drawn by rsvg-convert, from librsvg2-bin).")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Write what was chosen and why (the selection, its measured curve, pruning, warnings) as JSON.")
@model_options
def discover(task_spec: str, model_name: str | None, method: str, k: int | None, threshold: float | None,
             target: float | None, curve_points: int, prune: bool | None, tau: float, steps: int, ablation: str | None,
             metric: str | None, name: str, output: Path | None, curve_path: Path | None, plot_path: Path | None,
             json_path: Path | None, device: str, dtype: str, batch_size: int, seed: int | None,
             skip_unavailable: bool) -> None:
    """Find a circuit for a task and write it as a readable .circ, each edge with its score.

    The file is ready for `circ check`, `circ diff` against a published circuit, and
    `circ render` (scores become edge widths).

    With --target (the default), the faithfulness of the top-k circuit is measured for
    every k (up to --curve-points circuits) and the smallest measured k that reaches the
    target is kept; faithfulness need not grow with k. What was chosen and why (k, its f
    and standard error, whether every k was measured, warnings: a curve that falls beyond
    noise, a circuit that is most of the model) is printed on stderr, written in the
    file's header, and with --json as JSON. The circuit is then pruned of the edges it
    cannot use, which leaves its faithfulness unchanged (docs/discovery.md, "Pruning").
    """
    from ..core.models import ModelRef, fit_override
    from ..discovery.methods import METHODS
    from ..discovery.methods.base import Request
    from ..discovery.select import with_rounded_scores
    from ..eval.evaluator import Evaluator
    from ..eval.loading import model_for
    from ..eval.session import Session
    from ..eval.tasks.registry import task_data
    from ..lang.write import graph_to_circ

    _check_arguments(name, threshold, target, output, curve_path, plot_path, json_path)
    entry = METHODS[method]
    choices = [x is not None for x in (k, threshold, target)]
    if prune is None:  # what was asked for is what is written: K edges are K edges
        prune = k is None and threshold is None
    if sum(choices) > 1:
        raise UsageError("choose one of --edges, --threshold and --target")
    if not entry.ranks_edges and any(choices):
        raise UsageError(f"{method} chooses its own edges: use --tau, not --edges/--threshold/--target")
    if (curve_path or plot_path) and not entry.ranks_edges:
        raise UsageError("--curve and --plot need a ranking of edges (" +
                         ", ".join(m.name for m in METHODS.values() if m.ranks_edges) + ")")
    compiled, task = _task(task_spec)
    _refuse_overwriting(Path(compiled.path), output, curve_path, plot_path, json_path)
    problem = entry.refusal(METRICS[metric or task.metric])
    if problem:
        raise UsageError(f"--method {method} with metric {metric or task.metric}: {problem}")
    ref = ModelRef(model_name, base_dir=Path.cwd()) if model_name else compiled.model_ref
    if ref is None:
        raise UsageError(f"{compiled.path} declares no model; pass --model")
    if model_name and compiled.shape is not None:
        fit_override(compiled.shape, compiled.model_ref.name, ref)  # E215: the task's positions, its file's circuits
    backend = model_for(ref, device, dtype)
    session = Session(backend, _task_data(task_data, task, backend, seed), ablation or task.ablation,
                      metric or task.metric, batch_size)
    evaluator = Evaluator(session)
    for note in session.notes:
        click.echo(f"note: {note}", err=True)
    with ProgressBar(prefix="") as bar:
        session.progress = lambda done, total: bar("evaluating circuits", done, total)
        found = entry.run(Request(evaluator, steps=steps, tau=tau, progress=bar))
        chosen = _select(evaluator, found, k, threshold, target, curve_points, name,
                         lambda done, total: bar("measuring the faithfulness curve", done, total))
        circuit = chosen.circuit
        faith = _faithfulness(evaluator, circuit)
        pruned = _prune(evaluator, circuit, session.ablation, faith) if prune and circuit is not None else None
        if pruned is not None:
            circuit, faith = pruned.circuit, pruned.f_after
        if (curve_path or plot_path) and found.scores is not None:
            _write_cpr(evaluator, found.scores, curve_path, plot_path, method, task.name)
    lines = chosen.lines() + (pruned.lines(session.ablation) if pruned else [])
    warnings = chosen.warnings() + (pruned.warnings() if pruned else [])
    if json_path:
        report = {"method": method, "file": compiled.path, "task": task.name, "model": backend.name,
                  "ablation": session.ablation, "metric": session.metric, "how": chosen.how,
                  "selection": chosen.selection.to_json() if chosen.selection else None,
                  "pruning": pruned.to_json() if pruned else None,
                  "circuit": None if circuit is None else {"name": name, "edges": len(circuit.edges),
                                                           "faithfulness": faith},
                  "warnings": warnings}
        write_output(json_path, json_text(report), "--json")
    for line in lines:
        click.echo(line, err=True)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if json_path:
        click.echo(f"wrote {json_path}", err=True)
    if circuit is None:
        raise CircuitlangError(chosen.selection.summary() if chosen.selection else "no circuit found",
                               "lower --target, or use another method (the curve is in --json)")
    if not circuit.edges:
        raise CircuitlangError(f"no circuit: {chosen.how} keeps no edge", chosen.empty_help)
    header = [f"found by `circ discover` ({chosen.how}) on task `{task.name}` of {compiled.path}",
              f"{_count(len(circuit.edges), 'edge')}; faithfulness {_f4(faith)} under {session.ablation} ablation, "
              f"{session.metric}"]
    header += [part for line in lines + [f"warning: {w}" for w in warnings]
               for part in textwrap.wrap(line, 100, subsequent_indent="  ")]
    circuit = with_rounded_scores(circuit)
    met = chosen.selection.target if chosen.selection is not None else None
    check = _check_block(compiled.path, task.name, name, faith, met, output,
                         {"ablation": ablation, "metric": metric}, seed) if model_name is None else ""
    text = graph_to_circ(circuit, _written_model(ref, backend.name, output), header) + check
    if output:
        write_output(output, text)
        click.echo(f"wrote {output} (circuit {name}: {len(circuit.edges)} edges, faithfulness {_f4(faith)})",
                   err=True)
    else:
        click.echo(text, nl=False)


@dataclass(frozen=True)
class _Chosen:
    """A method's circuit as chosen by a selection rule: the circuit (None when `--target`
    is reached by no measured k), how it was chosen, and the `--target` selection."""

    circuit: object
    how: str
    selection: object = None
    empty_help: str | None = None  # what to do when the rule keeps no edge

    def lines(self) -> list[str]:
        return [f"selected: {self.selection.summary()}"] if self.selection is not None else []

    def warnings(self) -> list[str]:
        return list(self.selection.warnings) if self.selection is not None else []


def _select(evaluator, found, k: int | None, threshold: float | None, target: float | None, curve_points: int,
            name: str, progress) -> _Chosen:
    """The circuit from a method's result: a selection rule over its scores, or its circuit."""
    from ..discovery import select

    if found.scores is None:
        return _Chosen(found.circuit.renamed(name), found.how,
                       empty_help="lower --tau: every edge changed faithfulness by less than it")
    scores = found.scores
    if k is not None:
        return _Chosen(select.top_edges(scores, k, name=name), f"{found.how}, top {k} edges")
    if threshold is not None:
        best = max((v for v in scores.values() if math.isfinite(v)), default=None)
        return _Chosen(select.by_threshold(scores, threshold, name=name), f"{found.how}, score >= {threshold:g}",
                       empty_help="lower --threshold" + (f"; the highest score is {best:.6g}" if best is not None
                                                         else "; no edge has a finite score"))
    goal = 0.95 if target is None else target
    selection = select.select_by_target(evaluator, scores, goal, max_points=curve_points, name=name,
                                        progress=progress)
    return _Chosen(selection.circuit, f"{found.how}, fewest top edges reaching faithfulness {goal:g}", selection)


def _check_arguments(name: str, threshold: float | None, target: float | None, *outputs: Path | None) -> None:
    """Refuse, before any work, what would fail after it: a name the written file cannot
    parse, a non-finite --threshold or --target, an output path that cannot be written."""
    from ..present.interop.names import is_circuit_name

    if not is_circuit_name(name):
        raise UsageError(f"--name `{name}` cannot name a circuit", "use letters, digits and _, not a keyword")
    for option, value in (("--threshold", threshold), ("--target", target)):
        if value is not None and not math.isfinite(value):
            raise UsageError(f"{option} must be a finite number, not {value}")
    for option, path in zip(("-o", "--curve", "--plot", "--json"), outputs):
        check_writable(path, option)
    check_plot_name(outputs[2], "--plot")


def _refuse_overwriting(task_file: Path, *outputs: Path | None) -> None:
    """An output path that is the task's file would destroy it (and the written file imports it)."""
    for option, path in zip(("-o", "--curve", "--plot", "--json"), outputs):
        if path is not None and path.exists() and os.path.samefile(path, task_file):
            raise UsageError(f"{option} {path} is the task's file; writing there would replace it",
                             "write to another file")


def _task_data(task_data, task, backend, seed):
    """The task's examples; a bad data file is reported at its line, as `circ check` does."""
    from ..eval.tasks.base import TaskError

    try:
        return task_data(task, backend, seed)
    except TaskError as err:
        where = f"{err.path}:{err.line}: " if err.path and err.line else (f"{err.path}: " if err.path else "")
        raise CircuitlangError(f"{where}task `{task.name}`: {err.message}", err.help) from None


def _written_model(ref, name: str, output: Path | None) -> str:
    """The model as the written file must name it: a relative checkpoint directory is
    rewritten against the folder the file is written to (stdout: the current folder)."""
    from ..core.models import ALIASES, KNOWN_SHAPES

    path = ref.path()
    known = not ref.quoted and ALIASES.get(ref.name, ref.name) in KNOWN_SHAPES
    if known or ref.is_zoo or Path(ref.name).is_absolute() or not (path / "config.json").is_file():
        return name
    return _relative(path, output)


def _relative(path: Path, output: Path | None) -> str:
    """`path` as the file written to `output` names it (stdout: from the current folder)."""
    return path_from(output.parent if output is not None else Path("."), path)


def _check_block(task_file: str, task_name: str, name: str, faith: float, target: float | None,
                 output: Path | None, overrides: dict, seed: int | None) -> str:
    """An import of the task's file and a `check` of the circuit on that task, expecting the
    faithfulness it was found with (the target met, else the measured f rounded down to two
    decimals), so that `circ check` on the written file measures it again. Empty when f is
    not a number. `--seed` changes the data, which a check cannot: the comment says so."""
    if not math.isfinite(faith) or not -10 <= faith <= 10:
        return ""
    path = _relative(Path(task_file), output)
    if '"' in path or "\\" in path:
        return ""
    bound = math.floor(faith * 100) / 100
    if target is not None:
        bound = min(target, bound)
    alias = "task_source" if name != "task_source" else "task_source_file"
    options = ", ".join(f"{key} = {value}" for key, value in overrides.items() if value is not None)
    note = f" (found with --seed {seed}; the check uses the task's own data)" if seed is not None else ""
    return (f'\n// the task it was found on: `circ check` on this file measures its faithfulness again{note}\n'
            f'import "{path}" as {alias}\n\n'
            f"check {name} on {alias}.{task_name}{' with ' + options if options else ''} {{\n"
            f"    expect faithfulness >= {bound:g}\n}}\n")


def json_text(data: object) -> str:
    """JSON with every non-finite number written as null (NaN and Infinity are not JSON)."""
    return json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _f4(value: float, digits: int = 4) -> str:
    """A faithfulness for people: `undefined` when it is not a number."""
    return f"{value:.{digits}f}" if math.isfinite(value) else "undefined"


def _faithfulness(evaluator, circuit) -> float:
    return float(evaluator.faithfulness([circuit])[0]) if circuit is not None and circuit.edges else float("nan")


@dataclass(frozen=True)
class _Pruned:
    """The chosen circuit without the edges it cannot use, and f measured before and after."""

    circuit: object
    dead: int  # edges into nodes with no path to logits (exact under every ablation)
    unfed: int  # edges out of nodes no path from embed feeds, removed (exact under resample only)
    kept_unfed: tuple[str, ...]  # nodes no path from embed feeds whose edges were kept (mean, zero)
    f_before: float
    f_after: float

    def lines(self, ablation: str) -> list[str]:
        removed, left = self.dead + self.unfed, len(self.circuit.edges)
        out = [f"pruned: {_count(removed, 'edge')} the circuit cannot use ({self.dead} into nodes with no path "
               f"to logits, {self.unfed} out of nodes no path from embed feeds): {_count(left, 'edge')} left, "
               f"faithfulness {_f4(self.f_after)} (before: {_f4(self.f_before)})" if removed else
               "pruned: nothing; every edge can change the metric"]
        if self.kept_unfed:
            out.append(f"kept the edges out of {', '.join(self.kept_unfed)}: no path from embed feeds "
                       f"{'it' if len(self.kept_unfed) == 1 else 'them'}, so under {ablation} ablation "
                       "they carry a term that is the same for every prompt, not nothing")
        return out

    def warnings(self) -> list[str]:
        if abs(self.f_after - self.f_before) <= PRUNE_TOLERANCE or self.f_before != self.f_before:
            return []
        return [f"pruning changed the measured faithfulness from {_f4(self.f_before, 6)} to {_f4(self.f_after, 6)}; "
                "it should not (please report this)"]

    def to_json(self) -> dict:
        return {"removed_dead_ends": self.dead, "removed_unfed": self.unfed, "kept_unfed_nodes": list(self.kept_unfed),
                "edges": len(self.circuit.edges), "faithfulness_before": self.f_before,
                "faithfulness_after": self.f_after}


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


PRUNE_TOLERANCE = 1e-4  # pruning is exact; float32 rounding of a differently batched run stays far below this


def _prune(evaluator, circuit, ablation: str, f_before: float) -> _Pruned:
    """Remove what `core.analysis` proves the circuit cannot use under this ablation, and
    measure f again (it must not change)."""
    from ..core.analysis import UNFED_EXACT, dead_ends, names, prune, unfed_nodes, unusable_edges

    kv_group = evaluator.session.backend.shape.kv_group
    exact_unfed = ablation in UNFED_EXACT
    dead = unusable_edges(circuit, unfed=False, kv_group=kv_group)
    pruned = prune(circuit, unfed=exact_unfed, kv_group=kv_group)
    unfed = len(circuit.edges) - len(pruned.edges) - len(dead)
    dead_nodes = set(dead_ends(pruned, kv_group=kv_group))
    kept = () if exact_unfed else tuple(names(
        n for n in unfed_nodes(pruned, kv_group=kv_group) if n.is_sender and n not in dead_nodes))
    f_after = f_before if pruned is circuit else _faithfulness(evaluator, pruned)
    return _Pruned(pruned, len(dead), unfed, kept, f_before, f_after)


def _write_cpr(evaluator, scores, curve_path: Path | None, plot_path: Path | None, method: str,
               task_name: str) -> None:
    """MIB's faithfulness curve of the ranking, with CPR and CMD, as JSON and/or a plot (SVG, PNG or PDF)."""
    from ..discovery import select
    from ..discovery.plot import curve_svg

    curve = select.cpr_cmd(evaluator, scores)
    if curve_path:
        write_output(curve_path, json_text({"method": method, **curve}), "--curve")
        click.echo(f"wrote {curve_path} (CPR {_f4(curve['cpr'])}, CMD {_f4(curve['cmd'])})", err=True)
    if plot_path:
        points = [(p["fraction"], p["faithfulness"]) for p in curve["curve"]]
        write_plot(plot_path, curve_svg(points, f"{method} on {task_name}",
                                        f"CPR {_f4(curve['cpr'], 3)}, CMD {_f4(curve['cmd'], 3)}"), "--plot")
        click.echo(f"wrote {plot_path}", err=True)
