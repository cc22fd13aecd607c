"""How long `circ serve` takes to answer the page on the zoo model (run by hand).

`.venv/bin/python bench/bench_serve.py`: the first measure (model, task data, m(model),
m(empty)), then re-measuring after switching one edge off (the f, its interval, every
edge's and node's delta f, and the gain of the edge switched off: one batched pass), the
per-example effects of one edge, and exact discovery plus its curve. Threads: CIRC_THREADS
(default 1 here, stated in the output).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("CIRC_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from circuitlang.serve.workspace import View, Workspace  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed(work, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import torch

    ws = Workspace(ROOT / "stdlib" / "zoo")
    view = View("induction.circ", "induction", "repeat_tokens")
    first = timed(lambda: ws.measure(view))
    print(f"torch threads: {torch.get_num_threads()}; zoo:induction-2l, task repeat_tokens (256 examples)")
    print(f"first measure (load model, build data):      {first:.2f} s")
    off = View("induction.circ", "induction", "repeat_tokens", off=frozenset({4}))
    print(f"measure after switching an edge off, median of 10: {timed(lambda: ws.measure(off), 10):.3f} s")
    print(f"per-example effects of one edge, median of 10:    {timed(lambda: ws.effects(view, edge=4), 10):.3f} s")
    name = {}
    found = timed(lambda: name.update(n=ws.discover("induction.circ", "repeat_tokens", "exact")))
    print(f"exact discovery over the model:               {found:.2f} s")
    curve = View("induction.circ", name["n"], "repeat_tokens")
    print(f"its faithfulness curve (every k):             {timed(lambda: ws.curve(curve)):.2f} s")


if __name__ == "__main__":
    main()
