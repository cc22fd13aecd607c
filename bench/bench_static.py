"""Benchmark of the static pipeline (issue: the .circ language). Run by hand: `make bench`.

Measures, as ratios against baselines taken in the same run (machines are shared and
noisy; absolute seconds are printed for context only):

1. `circ check --static stdlib/` in a fresh process, against a bare `python -c pass`,
   and whether torch was imported (it must not be).
2. A full GPT-2-small edge graph (32,491 edges) written out by circuitlang's writer:
   parse + resolve + lower + check, in process (median of several runs), plain and
   with a score annotation on every edge; target: under 1 s.
3. A 101,273-edge file (the full edge graph of allenai/OLMo-2-0425-1B, as `circ import
   --all` would write it); target: under 2 s. For 2 and 3 the time is also split by
   stage (parse, resolve, lower, check, graph analysis), one run each.

Both files are generated deterministically (scores from random.Random(0)). Run with
OMP_NUM_THREADS=1 (the static pipeline is single-threaded Python either way).

Prints a Markdown table to paste into bench/README.md.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import circuitlang as cl  # noqa: E402
from circuitlang.core.graph import CircuitGraph  # noqa: E402
from circuitlang.lang.write import graph_to_circ  # noqa: E402

REPEATS = 7


def _time_process(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=False, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def _median_process(argv: list[str]) -> float:
    _time_process(argv)  # warm the file cache and lark's grammar cache
    return statistics.median(_time_process(argv) for _ in range(REPEATS))


def bench_check_stdlib() -> list[tuple[str, str]]:
    bare = _median_process([sys.executable, "-c", "pass"])
    check = _median_process([sys.executable, "-m", "circuitlang", "check", "--static", "stdlib"])
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, runpy; sys.argv=['circ','check','--static','stdlib'];"
         "from circuitlang.cli import cli\ntry:\n    cli.main(standalone_mode=False)\nexcept SystemExit: pass\n"
         "print('torch' in sys.modules, 'transformer_lens' in sys.modules)"],
        capture_output=True, text=True, cwd=ROOT)
    imported = probe.stdout.strip().splitlines()[-1] if probe.stdout.strip() else "?"
    files = len(list((ROOT / "stdlib").rglob("*.circ")))
    return [
        ("`python -c pass` (baseline)", f"{bare * 1000:.0f} ms"),
        (f"`circ check --static stdlib/` ({files} files)", f"{check * 1000:.0f} ms = {check / bare:.1f}x baseline"),
        ("torch / transformer_lens imported by it", imported),
    ]


def _time_compile(path: Path, n_edges: int) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = cl.compile_file(path)
        times.append(time.perf_counter() - start)
        assert result.ok and len(result.circuit().edges) == n_edges, result.diagnostics[:3]
    return statistics.median(times)


def _stages(path: Path) -> str:
    """One run split by stage: where the time goes."""
    from circuitlang.lang.analysis import graph_warnings
    from circuitlang.lang.check import check_program
    from circuitlang.lang.lower import Lowerer, lower_program
    from circuitlang.lang.parse import parse_file
    from circuitlang.lang.resolve import resolve_module

    marks = [time.perf_counter()]
    module, _ = parse_file(path)
    marks.append(time.perf_counter())
    program, _ = resolve_module(module, path)
    marks.append(time.perf_counter())
    lowerer = Lowerer(program)
    circuits, _ = lower_program(program, lowerer)
    marks.append(time.perf_counter())
    check_program(program, lowerer, True)
    marks.append(time.perf_counter())
    graph_warnings(program, circuits, [])
    marks.append(time.perf_counter())
    names = ("parse", "resolve", "lower", "check", "analysis")
    return ", ".join(f"{n} {(b - a) * 1000:.0f}" for n, a, b in zip(names, marks, marks[1:])) + " ms"


def _olmo_full() -> CircuitGraph:
    from circuitlang.core.models import KNOWN_SHAPES
    from circuitlang.core.shapes import all_edges

    shape = KNOWN_SHAPES["allenai/OLMo-2-0425-1B"]
    return CircuitGraph.from_edges(all_edges(shape), model=shape.name).renamed("full")


def bench_full_graph() -> list[tuple[str, str]]:
    full = cl.compile_text("model gpt2\ncircuit full { L*.H*, L*.MLP }").circuits["full"]
    rng = random.Random(0)
    scored = CircuitGraph(full.nodes, full.edges, full.model, "full",
                          annotations={e: {"score": round(rng.uniform(-1, 1), 4)} for e in full.edges})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        olmo = _olmo_full()
        for label, graph, target in (("GPT-2 full graph, 32,491 edges, plain", full, 1.0),
                                     ("GPT-2 full graph, 32,491 edges, a score on every edge", scored, 1.0),
                                     ("OLMo-2-0425-1B full graph, 101,273 edges, plain", olmo, 2.0)):
            path = Path(tmp) / "full.circ"
            path.write_text(graph_to_circ(graph, graph.model or "gpt2"), encoding="utf-8")
            seconds = _time_compile(path, len(graph.edges))
            size = path.stat().st_size / 1024
            rows.append((f"{label} ({size:.0f} KiB)",
                         f"{seconds * 1000:.0f} ms = {seconds / target:.2f}x the {target:.0f} s target"))
            rows.append(("  by stage (one run)", _stages(path)))
    return rows


def main() -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {sys.version.split()[0]} on {platform.machine()}, {os.cpu_count()} CPUs (load average "
          f"{load:.1f}), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, single-threaded pipeline; "
          f"{REPEATS} repeats, medians\n")
    print("| measurement | result |\n|---|---|")
    for name, value in bench_check_stdlib() + bench_full_graph():
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
