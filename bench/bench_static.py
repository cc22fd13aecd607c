"""Benchmark of the static pipeline (issue: the .circ language). Run by hand: `make bench`.

Measures, as ratios against baselines taken in the same run (machines are shared and
noisy; absolute seconds are printed for context only):

1. `circ check --static stdlib/` in a fresh process, against a bare `python -c pass`,
   and whether torch was imported (it must not be).
2. A full GPT-2-small edge graph (32,491 edges) written out by circuitlang's writer:
   parse + resolve + lower + check, in process (median of several runs), plain and
   with a score annotation on every edge; target: under 1 s.

Prints a Markdown table to paste into bench/README.md.
"""

from __future__ import annotations

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


def _time_compile(path: Path) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = cl.compile_file(path)
        times.append(time.perf_counter() - start)
        assert result.ok and len(result.circuit().edges) == 32491, result.diagnostics[:3]
    return statistics.median(times)


def bench_full_graph() -> list[tuple[str, str]]:
    full = cl.compile_text("model gpt2\ncircuit full { L*.H*, L*.MLP }").circuits["full"]
    rng = random.Random(0)
    scored = CircuitGraph(full.nodes, full.edges, full.model, "full",
                          annotations={e: {"score": round(rng.uniform(-1, 1), 4)} for e in full.edges})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, graph in (("plain", full), ("a score on every edge", scored)):
            path = Path(tmp) / "full.circ"
            path.write_text(graph_to_circ(graph, "gpt2"), encoding="utf-8")
            seconds = _time_compile(path)
            size = path.stat().st_size / 1024
            rows.append((f"GPT-2 full graph, 32,491 edges, {label} ({size:.0f} KiB)",
                         f"{seconds * 1000:.0f} ms = {seconds:.2f}x the 1 s target"))
            parsing = _time_parse(path)
            rows.append((f"  of which parsing alone ({label})", f"{parsing * 1000:.0f} ms"))
    return rows


def _time_parse(path: Path) -> float:
    from circuitlang.lang.parse import parse_file

    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        parse_file(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    print(f"python {sys.version.split()[0]}, {REPEATS} repeats, medians\n")
    print("| measurement | result |\n|---|---|")
    for name, value in bench_check_stdlib() + bench_full_graph():
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
