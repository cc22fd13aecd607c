"""`circ track` on 8 checkpoints: one after another in this process against a local Ray
with 2 workers (issue "Circuits across training"). By hand:
`.venv/bin/python bench/bench_track.py` (needs `pip install 'circuitlang[distributed]'`).

Two workloads per checkpoint of stdlib/zoo/induction_phase, on 1 torch thread per job
(the loader's choice for zoo-sized models) on both paths: "checks" runs the file's two
checks with 1000 bootstrap resamples and per-node necessity (as `circ track` does by
default); "heavy" adds the ablation-sensitivity sweep and `--discover exact --edges 15`.
The Ray time includes starting and stopping the local Ray (as `circ track` pays it);
both paths run twice, alternating, the fastest is kept, and the results are compared
for equality.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FILE = str(ROOT / "stdlib" / "zoo" / "induction_phase.circ")
STEPS = (100, 120, 130, 140, 150, 160, 180, 200)


def main() -> None:
    import tempfile

    from circuitlang.discovery.track import Options, track

    spec = ",".join(f"stdlib/zoo/induction_phase/step-{s:05d}" for s in STEPS)
    out = tempfile.mkdtemp()
    workloads = {"checks": Options(FILE),
                 "heavy": Options(FILE, sensitivity="on", method="exact", edges=15, out_dir=out)}
    print(f"{len(STEPS)} checkpoints, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print("| workload | in-process | local Ray, 2 workers | speed-up | identical |")
    for label, options in workloads.items():
        times: dict[int, list[float]] = {1: [], 2: []}
        results = {}
        for _ in range(2):
            for workers in (1, 2):
                start = time.perf_counter()
                results[workers] = track(FILE, spec, options, workers=workers, base=ROOT)
                times[workers].append(time.perf_counter() - start)
        same = json.dumps(results[1]["checkpoints"]) == json.dumps(results[2]["checkpoints"])
        seq, ray = min(times[1]), min(times[2])
        print(f"| {label} | {seq:.1f} s | {ray:.1f} s | {seq / ray:.2f}x | {same} |  (all runs: {times})")


if __name__ == "__main__":
    main()
