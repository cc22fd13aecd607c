"""`circ track`: a file's checks (and, on request, a discovered circuit) across training
checkpoints, as a table, JSON, Markdown and a plot (SVG, PNG or PDF; discovery/track.py measures,
present/track.py draws)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from .common import ProgressBar, UsageError, check_plot_name, check_writable, write_output, write_plot
from .discover import MethodChoice

EXAMPLES = """
\b
Examples:
  circ track stdlib/zoo/induction_phase.circ --checkpoints 'stdlib/zoo/induction_phase/step-*'
  circ track stdlib/zoo/induction_phase.circ --checkpoints 'stdlib/zoo/induction_phase/step-*' \\
      --json track.json --markdown track.md --plot track.svg
  circ track mine.circ --checkpoints runs/ckpt-100,runs/ckpt-200 --discover eap --edges 20 --out-dir found/
  circ track ioi.circ --checkpoints 'EleutherAI/pythia-160m@step*' --workers 4
"""


@click.command("track", epilog=EXAMPLES)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--checkpoints", "spec", required=True, metavar="SPEC",
              help="The checkpoints: directories and globs, comma-separated ('runs/step-*', quoted), or "
                   "MODEL@REVISIONS for a model's revisions in the Hugging Face cache (EleutherAI/pythia-70m@step*). "
                   "Ordered by training step, read from trainer_state.json or the name.")
@click.option("--circuit", "circuit_name", help="With --task: track this circuit on that task instead of the "
                                                "file's check blocks.")
@click.option("--task", "task_name", help="A task of the file: for --circuit, and for --discover.")
@click.option("--discover", "method", type=MethodChoice(), help="Also discover a circuit at every checkpoint "
              "with this method, write each as a .circ (--out-dir) and diff consecutive ones.")
@click.option("--edges", "k", type=click.IntRange(1), help="--discover: keep the K best-scored edges.")
@click.option("--target", type=float, help="--discover: the fewest top edges reaching this faithfulness [0.95].")
@click.option("--out-dir", type=click.Path(path_type=Path), help="--discover: write the circuits here, one "
              ".circ per checkpoint [track-circuits].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the result as JSON here.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), help="Write the result as Markdown here.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              help="Draw faithfulness and per-node necessity against training step here: .svg, or .png/.pdf "
                   "(drawn by rsvg-convert, from librsvg2-bin).")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Checkpoints measured at once on a local Ray started for the run (1: in this process) "
                   "[default: one per core when Ray is installed (pip install 'circuitlang[distributed]'), "
                   "except for zoo-sized models, which are measured faster than Ray starts].")
@click.option("--ray-address", help="Run on the Ray cluster at this address instead (e.g. ray://head:10001).")
@click.option("--device", default="cpu", show_default=True, help="Where to run: cpu, cuda, cuda:1, mps.")
@click.option("--dtype", type=click.Choice(["float32", "float64", "bfloat16", "float16"]), default="float32",
              show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Examples per forward pass.")
@click.option("--seed", type=int, default=None, help="Override every task's seed.")
@click.option("--sensitivity", type=click.Choice(["auto", "on", "off"]), default="off", show_default=True,
              help="Measure each node under every ablation at every checkpoint (see `circ check --help`).")
@click.option("--bootstrap", type=click.IntRange(0), default=1000, show_default=True,
              help="Resamples of the examples for the 95% intervals (0: no intervals).")
def track_command(file: Path, spec: str, circuit_name: str | None, task_name: str | None, method: str | None,
                  k: int | None, target: float | None, out_dir: Path | None, json_path: Path | None,
                  md_path: Path | None, plot_path: Path | None, workers: int | None, ray_address: str | None,
                  device: str, dtype: str, batch_size: int, seed: int | None, sensitivity: str,
                  bootstrap: int) -> None:
    """Measure a file's checks at every training checkpoint: when does the circuit form?

    At each checkpoint (a model of the file's shape) every `check` block runs as in
    `circ check`, with the faithfulness and its interval, the metric on the full model,
    and each node's necessity (the faithfulness lost without it). With --discover, a
    circuit is also found at each checkpoint and written as a .circ, so `circ diff`
    compares any two. A line per transition says what changed ("step 140 -> 150: ...").
    Checkpoints run in parallel on Ray when it is installed; the numbers are the same
    as one after another. Exits 1 if a checkpoint could not be measured.
    """
    from ..discovery.track import Options, track
    from ..present.track import grouped_warnings, track_markdown, track_svg, track_table

    if (k is not None or target is not None or out_dir is not None) and method is None:
        raise UsageError("--edges, --target and --out-dir go with --discover METHOD")
    if k is not None and target is not None:
        raise UsageError("choose one of --edges and --target")
    if target is not None and not math.isfinite(target):
        raise UsageError(f"--target must be a finite number, not {target}")
    for option, path in (("--json", json_path), ("--markdown", md_path), ("--plot", plot_path)):
        check_writable(path, option)
    check_plot_name(plot_path, "--plot")
    if method is not None and out_dir is None:
        out_dir = Path("track-circuits")
    options = Options(str(file), circuit_name, task_name, method, k, target, str(out_dir) if out_dir else None,
                      device, dtype, batch_size, seed, sensitivity, bootstrap)
    with ProgressBar(prefix="") as bar:
        result = track(str(file), spec, options, workers, ray_address,
                       progress=lambda done, total: bar("measuring checkpoints", done, total))
    from rich.console import Console

    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160).print(track_table(result))
    click.echo(f"ran: {result['how']}", err=True)
    for line in grouped_warnings(result):
        click.echo(f"warning: {line}", err=True)
    for change in result["transitions"]:
        click.echo(change["summary"])
    for path, text, option in ((json_path, lambda: json.dumps(result, indent=2, allow_nan=False) + "\n", "--json"),
                               (md_path, lambda: track_markdown(result), "--markdown")):
        if path is not None:
            write_output(path, text(), option)
            click.echo(f"wrote {path}", err=True)
    if plot_path is not None:
        write_plot(plot_path, track_svg(result, title=f"{file}"), "--plot")
        click.echo(f"wrote {plot_path}", err=True)
    problems = [cp for cp in result["checkpoints"] if cp.get("problem") or any("problem" in c for c in cp["checks"])]
    for cp in problems:
        what = cp.get("problem") or "; ".join(c["problem"] for c in cp["checks"] if "problem" in c)
        click.echo(f"error: {cp['name']}: {what}", err=True)
    sys.exit(1 if problems else 0)
