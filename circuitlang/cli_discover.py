"""`circ discover`: find a circuit on a model and task, and write it as a .circ file.

Methods (circuitlang.discovery): `eap-ig` (default), `eap`, `exact` (one ablation per
edge, batched) rank every edge of the model; a circuit is then chosen by `--edges K`,
`--threshold T` or `--target F` (the smallest top-k circuit reaching faithfulness F).
`acdc` prunes the whole model receiver by receiver with `--tau`. Imports torch only
when it runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cli_evaluate import ProgressBar, model_options

EXAMPLES = """
\b
Examples:
  circ discover --task stdlib/zoo/induction.circ:repeat_tokens_zero --edges 7 -o found.circ
  circ discover --task stdlib/zoo/induction.circ:repeat_tokens --method acdc --tau 0.02
  circ discover --task stdlib/zoo/mlp_planted.circ:mod_sum_zero --target 0.95 \\
      --curve curve.json --plot curve.svg -o found.circ
"""


class DiscoverError(click.ClickException):
    """A usage problem: message, exit 2."""

    exit_code = 2


def _task(spec: str):
    """Compile FILE and return it with its task TASK (FILE:TASK, or the only task of FILE)."""
    from .api import compile_file
    from .report import write_diagnostics

    path_text, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    path = Path(path_text or spec)
    if not path.is_file():
        raise DiscoverError(f"no such file: {path}")
    compiled = compile_file(path)
    if not compiled.ok:
        write_diagnostics([d for d in compiled.diagnostics if d.is_error], "full", sys.stderr)
        sys.exit(1)
    if not name:
        if len(compiled.tasks) != 1:
            raise DiscoverError(f"{path} has {len(compiled.tasks)} tasks; name one as {path}:TASK")
        name = next(iter(compiled.tasks))
    if name not in compiled.tasks:
        raise DiscoverError(f"no task `{name}` in {path}; it has: {', '.join(compiled.tasks) or 'none'}")
    return compiled, compiled.tasks[name]


@click.command("discover", epilog=EXAMPLES)
@click.option("--task", "task_spec", required=True, help="FILE:TASK — the task (its data, ablation, metric).")
@click.option("--model", "model_name", help="The model (default: the task file's model).")
@click.option("--method", type=click.Choice(["eap-ig", "eap", "exact", "acdc"]), default="eap-ig", show_default=True)
@click.option("--edges", "k", type=click.IntRange(1), help="Keep the K best-scored edges.")
@click.option("--threshold", type=float, help="Keep the edges scored at least this.")
@click.option("--target", type=float, help="Keep the fewest top edges reaching this faithfulness [default: 0.95].")
@click.option("--tau", type=click.FloatRange(0), default=0.01, show_default=True,
              help="acdc: remove an edge when it changes faithfulness by less than this.")
@click.option("--steps", type=click.IntRange(1), default=5, show_default=True, help="eap-ig: integration steps.")
@click.option("--ablation", type=click.Choice(["resample", "mean", "zero"]), help="Override the task's ablation.")
@click.option("--metric", type=click.Choice(["logit_diff", "logprob", "prob", "kl", "accuracy"]),
              help="Override the task's metric.")
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
    from .backend import ModelLoadError, load_model
    from .discovery import attribution
    from .evaluation import EvaluationError, Evaluator, Session, task_data
    from .graph import CircuitGraph
    from .runner import DTYPES
    from .tasks import TaskError
    from .write import graph_to_circ

    choices = [x is not None for x in (k, threshold, target)]
    if sum(choices) > 1:
        raise DiscoverError("choose one of --edges, --threshold and --target")
    if method == "acdc" and any(choices):
        raise DiscoverError("acdc chooses its own edges: use --tau, not --edges/--threshold/--target")
    if (curve_path or plot_path) and method == "acdc":
        raise DiscoverError("--curve and --plot need a ranking of edges (eap-ig, eap or exact)")
    compiled, task = _task(task_spec)
    problem = attribution.gradient_problem(method, metric or task.metric) if method in ("eap", "eap-ig") else None
    if problem:
        raise DiscoverError(f"--method {method} with metric {metric or task.metric}: {problem}")
    decl = compiled.program.root.module.model
    try:
        if model_name:
            loaded = load_model(model_name, device=device, dtype=DTYPES[dtype])
        elif decl is not None:
            loaded = load_model(decl.name, decl.quoted, compiled.program.root.base_dir, device, DTYPES[dtype])
        else:
            raise DiscoverError(f"{compiled.path} declares no model; pass --model")
        session = Session(loaded, task_data(task, loaded, seed), ablation or task.ablation, metric or task.metric,
                          batch_size)
        evaluator = Evaluator(session)
    except (ModelLoadError, EvaluationError, TaskError) as err:
        click.echo(f"error: {err}", err=True)
        if getattr(err, "help", None):
            click.echo(f"  = help: {err.help}", err=True)
        sys.exit(1)
    for note in session.notes:
        click.echo(f"note: {note}", err=True)
    with ProgressBar(prefix="") as bar:
        session.progress = lambda done, total: bar("evaluating circuits", done, total)
        circuit, how = _find(session, evaluator, method, k, threshold, target, tau, steps, name, curve_path,
                             plot_path, task.name, bar)
        faith = float(evaluator.faithfulness([circuit])[0]) if circuit.edges else float("nan")
    header = [f"found by `circ discover` ({how}) on task `{task.name}` of {compiled.path}",
              f"{len(circuit.edges)} edges; faithfulness {faith:.4f} under {session.ablation} ablation, "
              f"{session.metric}"]
    rounded = {e: {key: float(f"{v:.6g}") if isinstance(v, float) else v for key, v in notes.items()}
               for e, notes in circuit.annotations.items()}
    circuit = CircuitGraph(circuit.nodes, circuit.edges, circuit.model, circuit.name, circuit.level,
                           circuit.doc, rounded)
    text = graph_to_circ(circuit, loaded.name, header)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} (circuit {name}: {len(circuit.edges)} edges, faithfulness {faith:.4f})",
                   err=True)
    else:
        click.echo(text, nl=False)


def _find(session, evaluator, method: str, k: int | None, threshold: float | None, target: float | None,
          tau: float, steps: int, name: str, curve_path: Path | None, plot_path: Path | None, task_name: str,
          bar: ProgressBar):
    """Run the method and the selection; write the curve if asked. Returns (circuit, how)."""
    from .discovery import acdc as acdc_mod
    from .discovery import attribution, select
    from .discovery.plot import curve_svg
    from .graph import CircuitGraph
    from .models import all_edges

    if method == "acdc":
        result = acdc_mod.acdc(evaluator, CircuitGraph.from_edges(all_edges(session.loaded.shape)), tau,
                               progress=lambda done, total: bar("acdc: pruning receivers", done, total))
        return result.circuit.renamed(name), f"acdc, tau = {tau:g}, {result.passes} batched passes"
    scoring = lambda done, total: bar(f"{method}: scoring edges", done, total)  # noqa: E731
    scorer = {"eap-ig": lambda: attribution.eap_ig_scores(session, steps=steps, evaluator=evaluator,
                                                          progress=scoring),
              "eap": lambda: attribution.eap_scores(session, evaluator=evaluator, progress=scoring),
              "exact": lambda: attribution.exact_scores(session, evaluator=evaluator)}[method]
    scores = scorer()
    if k is not None:
        circuit, how = select.top_edges(scores, k, name=name), f"{method}, top {k} edges"
    elif threshold is not None:
        circuit, how = select.by_threshold(scores, threshold, name=name), f"{method}, score >= {threshold:g}"
    else:
        goal = 0.95 if target is None else target
        found, _ = select.smallest_reaching(evaluator, scores, goal, name=name)
        if found is None:
            click.echo(f"error: no top-k circuit reaches faithfulness {goal:g}; even every edge misses it", err=True)
            sys.exit(1)
        circuit, how = found, f"{method}, fewest top edges reaching faithfulness {goal:g}"
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
