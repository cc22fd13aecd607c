"""`circ discover`: find a circuit on a model and task, and write it as a .circ file.

Methods (circuitlang.discovery.methods): `eap-ig` (default), `eap`, `exact` rank every
edge of the model; a circuit is then chosen by `--edges K`, `--threshold T` or
`--target F` (the smallest top-k circuit reaching faithfulness F). `acdc` prunes the
whole model receiver by receiver with `--tau`. Imports torch only when it runs (or when
`--method`'s choices are listed).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..core.ablations import ABLATIONS
from ..core.metrics import METRICS
from .common import ProgressBar, UsageError, compile_or_fail, model_options

EXAMPLES = """
\b
Examples:
  circ discover --task stdlib/zoo/induction.circ:repeat_tokens_zero --edges 7 -o found.circ
  circ discover --task stdlib/zoo/induction.circ:repeat_tokens --method acdc --tau 0.02
  circ discover --task stdlib/zoo/mlp_planted.circ:mod_sum_zero --target 0.95 \\
      --curve curve.json --plot curve.svg -o found.circ
"""


class _MethodChoice(click.Choice):
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
@click.option("--model", "model_name", help="The model (default: the task file's model).")
@click.option("--method", type=_MethodChoice(), default="eap-ig", show_default=True)
@click.option("--edges", "k", type=click.IntRange(1), help="Keep the K best-scored edges.")
@click.option("--threshold", type=float, help="Keep the edges scored at least this.")
@click.option("--target", type=float, help="Keep the fewest top edges reaching this faithfulness [default: 0.95].")
@click.option("--tau", type=click.FloatRange(0), default=0.01, show_default=True,
              help="acdc: remove an edge when it changes faithfulness by less than this.")
@click.option("--steps", type=click.IntRange(1), default=5, show_default=True, help="eap-ig: integration steps.")
@click.option("--ablation", type=click.Choice(ABLATIONS.names()), help="Override the task's ablation.")
@click.option("--metric", type=click.Choice(METRICS.names()), help="Override the task's metric.")
@click.option("--name", default="found", show_default=True, help="Name of the circuit written.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the .circ here (default: stdout).")
@click.option("--curve", "curve_path", type=click.Path(path_type=Path),
              help="Write the faithfulness curve over MIB's edge fractions, with CPR and CMD, as JSON.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Draw that curve as SVG.")
@model_options
def discover(task_spec: str, model_name: str | None, method: str, k: int | None, threshold: float | None,
             target: float | None, tau: float, steps: int, ablation: str | None, metric: str | None, name: str,
             output: Path | None, curve_path: Path | None, plot_path: Path | None, device: str, dtype: str,
             batch_size: int, seed: int | None, skip_unavailable: bool) -> None:
    """Find a circuit for a task and write it as a readable .circ, each edge with its score.

    The file is ready for `circ check`, `circ diff` against a published circuit, and
    `circ render` (scores become edge widths).
    """
    from ..core.graph import CircuitGraph
    from ..core.models import ModelRef
    from ..discovery.methods import METHODS
    from ..discovery.methods.base import Request
    from ..eval.evaluator import Evaluator
    from ..eval.loading import model_for
    from ..eval.session import Session
    from ..eval.tasks.registry import task_data
    from ..lang.write import graph_to_circ

    entry = METHODS[method]
    choices = [x is not None for x in (k, threshold, target)]
    if sum(choices) > 1:
        raise UsageError("choose one of --edges, --threshold and --target")
    if not entry.ranks_edges and any(choices):
        raise UsageError(f"{method} chooses its own edges: use --tau, not --edges/--threshold/--target")
    if (curve_path or plot_path) and not entry.ranks_edges:
        raise UsageError("--curve and --plot need a ranking of edges (" +
                         ", ".join(m.name for m in METHODS.values() if m.ranks_edges) + ")")
    compiled, task = _task(task_spec)
    problem = entry.refusal(METRICS[metric or task.metric])
    if problem:
        raise UsageError(f"--method {method} with metric {metric or task.metric}: {problem}")
    ref = ModelRef(model_name) if model_name else compiled.model_ref
    if ref is None:
        raise UsageError(f"{compiled.path} declares no model; pass --model")
    backend = model_for(ref, device, dtype)
    session = Session(backend, task_data(task, backend, seed), ablation or task.ablation, metric or task.metric,
                      batch_size)
    evaluator = Evaluator(session)
    for note in session.notes:
        click.echo(f"note: {note}", err=True)
    with ProgressBar(prefix="") as bar:
        session.progress = lambda done, total: bar("evaluating circuits", done, total)
        found = entry.run(Request(evaluator, steps=steps, tau=tau, progress=bar))
        circuit, how = _select(evaluator, found, k, threshold, target, name, curve_path, plot_path, method, task.name)
        faith = float(evaluator.faithfulness([circuit])[0]) if circuit.edges else float("nan")
    header = [f"found by `circ discover` ({how}) on task `{task.name}` of {compiled.path}",
              f"{len(circuit.edges)} edges; faithfulness {faith:.4f} under {session.ablation} ablation, "
              f"{session.metric}"]
    rounded = {e: {key: float(f"{v:.6g}") if isinstance(v, float) else v for key, v in notes.items()}
               for e, notes in circuit.annotations.items()}
    circuit = CircuitGraph(circuit.nodes, circuit.edges, circuit.model, circuit.name, circuit.level,
                           circuit.doc, rounded)
    text = graph_to_circ(circuit, backend.name, header)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} (circuit {name}: {len(circuit.edges)} edges, faithfulness {faith:.4f})",
                   err=True)
    else:
        click.echo(text, nl=False)


def _select(evaluator, found, k: int | None, threshold: float | None, target: float | None, name: str,
            curve_path: Path | None, plot_path: Path | None, method: str, task_name: str):
    """The circuit from a method's result (a selection rule over its scores, or its circuit),
    writing the curve if asked. Returns (circuit, how)."""
    from ..core.errors import CircuitlangError
    from ..discovery import select
    from ..discovery.plot import curve_svg

    if found.scores is None:
        return found.circuit.renamed(name), found.how
    scores = found.scores
    if k is not None:
        circuit, how = select.top_edges(scores, k, name=name), f"{found.how}, top {k} edges"
    elif threshold is not None:
        circuit, how = select.by_threshold(scores, threshold, name=name), f"{found.how}, score >= {threshold:g}"
    else:
        goal = 0.95 if target is None else target
        chosen, _ = select.smallest_reaching(evaluator, scores, goal, name=name)
        if chosen is None:
            raise CircuitlangError(f"no top-k circuit reaches faithfulness {goal:g}; even every edge misses it")
        circuit, how = chosen, f"{found.how}, fewest top edges reaching faithfulness {goal:g}"
    if curve_path or plot_path:
        curve = select.cpr_cmd(evaluator, scores)
        if curve_path:
            curve_path.write_text(json.dumps({"method": method, **curve}, indent=2) + "\n", encoding="utf-8")
            click.echo(f"wrote {curve_path} (CPR {curve['cpr']:.4f}, CMD {curve['cmd']:.4f})", err=True)
        if plot_path:
            points = [(p["fraction"], p["faithfulness"]) for p in curve["curve"]]
            plot_path.write_text(curve_svg(points, f"{method} on {task_name}",
                                           f"CPR {curve['cpr']:.3f}, CMD {curve['cmd']:.3f}"), encoding="utf-8")
            click.echo(f"wrote {plot_path}", err=True)
    return circuit, how
