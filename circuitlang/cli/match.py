"""`circ match`: which heads of a model play the roles of a motif, or of a circuit
written for another model (discovery/match.py searches; this module parses and prints)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .common import ProgressBar, UsageError, check_writable, write_output

EXAMPLES = """
\b
Examples:
  circ match stdlib/motifs/induction.circ:induction --model zoo:induction-2l \\
      --task stdlib/zoo/induction.circ:repeat_tokens
  circ match stdlib.motifs.induction:induction --model zoo:induction-trained \\
      --task stdlib/zoo/induction_trained.circ:repeat_tokens --group-size 3 -o bound.circ
  circ match stdlib/zoo/mlp_planted.circ:planted --model zoo:mlp-planted \\
      --task stdlib/zoo/mlp_planted.circ:mod_sum_zero              # transfer a circuit
"""


def template_path(spec: str) -> tuple[Path, str | None]:
    """MOTIF as `FILE[:NAME]` (a path) or `stdlib.a.b[:NAME]` (as an import names it)."""
    from ..lang.resolve import stdlib_root

    file, _, name = spec.rpartition(":") if ":" in spec and not Path(spec).exists() else (spec, "", "")
    if file.startswith("stdlib.") and not file.endswith(".circ") and not Path(file).exists():
        path = stdlib_root().joinpath(*file.split(".")[1:]).with_suffix(".circ")
    else:
        path = Path(file)
    if not path.is_file():
        raise UsageError(f"no motif file {file}", "give FILE:NAME, e.g. stdlib/motifs/induction.circ:induction")
    return path, name or None


@click.command("match", epilog=EXAMPLES)
@click.argument("motif", metavar="MOTIF")
@click.option("--task", "task_spec", required=True, help="FILE:TASK — the task the roles are measured on.")
@click.option("--model", "model_name", help="The model to search (default: the task file's model).")
@click.option("--top", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Candidates per parameter kept after attribution (and attention-pattern) scoring; "
                   "the bindings evaluated are their combinations.")
@click.option("--group-size", type=click.IntRange(1, 16), default=None,
              help="Components a parameter may hold, grown greedily from the best binding [default: 1 for a "
                   "motif's parameters, a group's size for a transferred circuit].")
@click.option("--min-gain", type=click.FloatRange(0), default=0.01, show_default=True,
              help="Grow a group only while an addition raises faithfulness by at least this.")
@click.option("--keep", type=click.IntRange(1), default=10, show_default=True, help="Bindings shown.")
@click.option("--no-patterns", is_flag=True, help="Skip the attention-pattern scores.")
@click.option("--scoring-examples", type=click.IntRange(1), default=64, show_default=True,
              help="Examples the attribution pass that picks candidates uses (bindings are measured on all).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the best binding as a .circ here.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the ranking as JSON here.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Examples per forward pass.")
@click.option("--seed", type=int, default=None, help="Override the task's seed (data and bootstrap).")
@click.option("--bootstrap", type=click.IntRange(0), default=1000, show_default=True,
              help="Resamples of the examples for the intervals of the bindings shown (0: none).")
def match_command(motif: str, task_spec: str, model_name: str | None, top: int, group_size: int | None,
                  min_gain: float, keep: int, no_patterns: bool, scoring_examples: int, output: Path | None, json_path: Path | None,
                  device: str, batch_size: int, seed: int | None, bootstrap: int) -> None:
    """Find which components of a model play the roles of a motif or a circuit.

    MOTIF is FILE:NAME: a motif (a circuit with parameters, e.g.
    stdlib/motifs/induction.circ:induction), or a circuit written for another model,
    whose groups become parameters matched as sets of heads. Each parameter's candidates
    are the components whose edges in that role carry the most attribution (one EAP
    pass), plus heads whose attention pattern fits a role named by the parameter
    (prev, ind, dup); every combination is evaluated in batched forward passes and
    ranked by faithfulness on the task, with 95% intervals and the attention-pattern
    score of each parameter's heads. Groups grow greedily while faithfulness rises.
    """
    from ..core.models import ModelRef
    from ..discovery.match import bound_circuit, load_template, search
    from ..eval.evaluator import Evaluator
    from ..eval.loading import model_for
    from ..eval.session import Session
    from ..eval.tasks.registry import task_data
    from .discover import _task

    check_writable(output, "-o")
    check_writable(json_path, "--json")
    path, name = template_path(motif)
    template = load_template(path, name)
    compiled, task = _task(task_spec)
    ref = ModelRef(model_name, base_dir=Path.cwd()) if model_name else compiled.model_ref
    if ref is None:
        raise UsageError(f"{compiled.path} declares no model; pass --model")
    backend = model_for(ref, device)
    data = task_data(task, backend, seed if seed is not None else task.seed)
    evaluator = Evaluator(Session(backend, data, task.ablation, task.metric, batch_size), draws=bootstrap)
    with ProgressBar(prefix="") as bar:
        result = search(template, evaluator, top=top, group_size=group_size, min_gain=min_gain, keep=keep,
                        patterns=not no_patterns, seed=seed if seed is not None else task.seed,
                        scoring_examples=scoring_examples, progress=bar)
    _print(result, backend.name, task.name, evaluator)
    if json_path:
        write_output(json_path, json.dumps(_json(result, backend.name, task.name), indent=2, allow_nan=False) + "\n",
                     "--json")
        click.echo(f"wrote {json_path}", err=True)
    if output:
        how = f"task {task.name} of {compiled.path}, {task.ablation} ablation, {task.metric}"
        write_output(output, bound_circuit(result, backend.name, how), "-o")
        click.echo(f"wrote {output}", err=True)
    sys.exit(0)


def _print(result, model: str, task: str, evaluator) -> None:
    from rich.console import Console
    from rich.table import Table

    template = result.template
    table = Table(title=f"{template.name} ({', '.join(template.params)}) on {model}, task {task}: "
                        f"{result.evaluated} bindings evaluated, {result.per_pass} per forward pass",
                  title_justify="left")
    table.add_column("#", justify="right")
    for param in template.params:
        table.add_column(param)
    table.add_column("faithfulness [95%]", justify="right")
    table.add_column("edges", justify="right")
    roles = [p for p in template.params if result.matches and p in result.matches[0].pattern]
    for param in roles:
        table.add_column(f"{param}: pattern", justify="right")
    for rank, m in enumerate(result.matches, 1):
        binding = dict(m.binding)
        f = f"{m.faithfulness:.3f}" + (f" [{m.interval[0]:.3f}, {m.interval[1]:.3f}]" if m.interval else "")
        table.add_row(str(rank), *(" + ".join(str(n) for n in binding[p]) for p in template.params), f,
                      str(len(m.circuit.edges)),
                      *("n/a" if m.pattern[p] is None else f"{m.pattern[p]:.2f}" for p in roles))
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160).print(table)
    for param in template.params:
        click.echo(f"candidates for {param}: {', '.join(str(n) for n in result.candidates[param])}", err=True)
    for warning in evaluator.warnings:
        click.echo(f"warning: {warning}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


def _json(result, model: str, task: str) -> dict:
    template = result.template
    return {"schema": 1, "template": template.name, "source": template.source, "params": list(template.params),
            "model": model, "task": task, "evaluated": result.evaluated, "per_pass": result.per_pass,
            "candidates": {p: [str(n) for n in nodes] for p, nodes in result.candidates.items()},
            "matches": [{"binding": {p: [str(n) for n in nodes] for p, nodes in m.binding},
                         "faithfulness": m.faithfulness, "interval": list(m.interval) if m.interval else None,
                         "edges": len(m.circuit.edges), "pattern": dict(m.pattern)} for m in result.matches],
            "notes": list(result.notes)}
