"""Benchmark of torch's thread count (issue 15, item "threads"). By hand:
`.venv/bin/python bench/bench_threads.py [--cli] [--threads 1,2]`.

For each zoo model (induction-2l, mlp-planted: tiny; gpt2-random: GPT-2-small shape),
the median wall time of plain forward passes (batch 16 x 32 tokens) under each thread
count, in one process, alternating the counts so that load from other users hits each
alike. With `--cli`, also the wall time of `circ check stdlib/zoo/induction.circ` in a
fresh process per run with `--threads N`. Prints the machine (cores, load) first: on a
shared machine the times are context, the ratios between thread counts the result.
circuitlang's default (eval.loading.thread_count: 1 thread below SMALL_MODEL_PARAMS
block weights, else one per idle core) rests on these numbers (bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from circuitlang.eval.loading import SMALL_MODEL_PARAMS, idle_threads, load_model, thread_count

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("zoo:induction-2l", "zoo:mlp-planted", "zoo:gpt2-random")


def machine() -> str:
    """Cores, load average and torch's default thread count, as one line."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load}, "
            f"torch {torch.__version__} default {torch.get_num_threads()} threads")


def forward_times(name: str, counts: list[int], repeats: int) -> dict[int, float]:
    """Median seconds of one forward pass of model `name` under each thread count."""
    backend = load_model(name)
    tokens = torch.randint(0, backend.d_vocab, (16, min(32, backend.n_ctx)))
    times: dict[int, list[float]] = {n: [] for n in counts}
    with torch.no_grad():
        backend.logits(tokens)  # warm-up
        for _ in range(repeats):
            for n in counts:
                torch.set_num_threads(n)
                start = time.perf_counter()
                backend.logits(tokens)
                times[n].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def cli_times(counts: list[int], repeats: int) -> dict[int, float]:
    """Median wall seconds of `circ check stdlib/zoo/induction.circ --threads N`."""
    circ = str(Path(sys.executable).with_name("circ"))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "CIRC_THREADS")}
    times: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(repeats):
        for n in counts:
            start = time.perf_counter()
            subprocess.run([circ, "check", "--threads", str(n), "stdlib/zoo/induction.circ"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times[n].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}", help="thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cli", action="store_true", help="also time `circ check stdlib/zoo/induction.circ`")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.threads.split(",")})
    print(machine())
    print(f"default rule: 1 thread below {SMALL_MODEL_PARAMS:,} block weights, else the idle cores "
          f"(now {idle_threads()})")
    for name in MODELS:
        times = forward_times(name, counts, args.repeats)
        chosen = thread_count(load_model(name).shape)
        row = "  ".join(f"{n} thr {t * 1000:8.1f} ms" for n, t in times.items())
        print(f"{name:<18} forward 16x32: {row}   (default here: {chosen})")
    if args.cli:
        times = cli_times(counts, max(1, args.repeats // 2))
        print("circ check stdlib/zoo/induction.circ: " + "  ".join(f"{n} thr {t:.1f} s" for n, t in times.items()))


if __name__ == "__main__":
    main()
