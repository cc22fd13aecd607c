"""Benchmark of the evaluation engine (issue: evaluate circuits on real models). By hand:
`.venv/bin/python bench/bench_eval.py`.

On the GPT-2-shape zoo model (random weights), CPU, one fixed batch (8 prompts x 16
tokens), a minimality sweep over the IOI-shaped circuit in bench/ioi_shape.circ: the
circuit and the circuit minus each of its 182 edges, K = 183 variants. Measured in one
run, each in a fresh process (so peak memory is its own):

- plain: one plain forward pass over the same number of tokens (K x 8 prompts); and,
  since that pass spends most of its time unembedding every position into 50,257
  logits, the same pass unembedding only the END position (what the engine computes);
- fast: the K variants, batched, with circuitlang's fast engine (logits at END);
- reference: the K variants one `run_with_hooks` call each (the masked formula of
  docs/evaluation.md, with split q/k/v inputs), timed on a few and extrapolated.

Targets: fast <= 1.5x plain; reference / fast >= 5. Also the worst case for the fast
engine, a dense circuit (every edge of the model, 99 single edges removed), against a
plain pass with logits at END only. Also prints peak memory (RSS) of
each, above the memory of the loaded model, and checks that fast and reference agree.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BATCH, LENGTH, REFERENCE_SAMPLES, DENSE_VARIANTS = 8, 16, 3, 100


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode: str) -> dict:
    import torch

    import circuitlang as cl
    from circuitlang.core.graph import CircuitGraph
    from circuitlang.eval.engines.fast import FastEngine
    from circuitlang.eval.engines.reference import run_reference
    from circuitlang.eval.loading import load_model
    from circuitlang.eval.senders import cache_senders

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    loaded = load_model("zoo:gpt2-random")
    model = loaded.model  # the HookedTransformer: its own forward is the baseline
    generator = torch.Generator().manual_seed(0)
    clean = torch.randint(0, model.cfg.d_vocab, (BATCH, LENGTH), generator=generator)
    corrupt = torch.randint(0, model.cfg.d_vocab, (BATCH, LENGTH), generator=generator)
    named = {"END": torch.full((BATCH,), LENGTH - 1)}
    if mode.startswith("dense"):  # the worst case: every edge of the model, 100 random edges removed
        circuit = cl.compile_text("model gpt2\ncircuit full { L*.H*, L*.MLP }").circuits["full"]
        removed = random.Random(0).sample(circuit.sorted_edges(), DENSE_VARIANTS - 1)
        variants = [circuit] + [circuit - CircuitGraph.from_edges([e]) for e in removed]
        mode = mode[len("dense_"):]
    else:
        circuit = cl.compile_file(ROOT / "bench" / "ioi_shape.circ").circuits["ioi"]
        variants = [circuit] + [circuit - CircuitGraph.from_edges([e]) for e in circuit.sorted_edges()]
    ablated = cache_senders(loaded, corrupt).outputs
    base_mb = _peak_mb()
    start = time.perf_counter()
    with torch.no_grad():
        if mode == "plain":
            model(clean.repeat(len(variants), 1))
            out = None
        elif mode == "plain_end":  # the same, but unembedding only the END position, as the engine does
            resid = model(clean.repeat(len(variants), 1), stop_at_layer=model.cfg.n_layers)
            model.unembed(model.ln_final(resid[:, -1:]))
            out = None
        elif mode == "fast":
            out = FastEngine(loaded).run(clean, ablated, variants, named)
        else:
            out = torch.stack([run_reference(loaded, clean, ablated, [v], named)[0]
                               for v in variants[:REFERENCE_SAMPLES]])
    seconds = time.perf_counter() - start
    if mode == "reference":
        seconds *= len(variants) / REFERENCE_SAMPLES
    if mode == "fast":  # the first variants must agree with the reference
        check = torch.stack([run_reference(loaded, clean, ablated, [v], named)[0] for v in variants[:2]])
        agree = float((check - out[:2]).abs().max())
    else:
        agree = None
    return {"mode": mode, "seconds": seconds, "peak_mb": _peak_mb(), "base_mb": base_mb,
            "variants": len(variants), "edges": len(circuit.edges), "max_abs_diff_vs_reference": agree}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--mode":
        print(json.dumps(measure(sys.argv[2])))
        return
    results = {}
    for mode in ("plain", "plain_end", "fast", "reference", "dense_plain_end", "dense_fast"):
        run = subprocess.run([sys.executable, __file__, "--mode", mode], capture_output=True, text=True, cwd=ROOT)
        if run.returncode:
            sys.exit(f"{mode} failed:\n{run.stderr}")
        results[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    plain, plain_end = results["plain"], results["plain_end"]
    fast, ref = results["fast"], results["reference"]
    print(f"K = {fast['variants']} variants of a {fast['edges']}-edge circuit, batch {BATCH} x {LENGTH} tokens, "
          f"{os.environ.get('BENCH_THREADS', '2')} threads\n")
    print("| measurement | seconds | peak memory above the loaded model |\n|---|---|---|")
    for name, r in (("plain forward over K x batch", plain),
                    ("plain forward over K x batch, logits at END only", plain_end),
                    ("fast engine, K variants batched", fast),
                    (f"reference, one run_with_hooks per variant (extrapolated from {REFERENCE_SAMPLES})", ref)):
        print(f"| {name} | {r['seconds']:.2f} | {r['peak_mb'] - r['base_mb']:.0f} MB |")
    print(f"\nfast / plain = {fast['seconds'] / plain['seconds']:.2f} (target <= 1.5); "
          f"fast / plain with logits at END only = {fast['seconds'] / plain_end['seconds']:.2f}")
    print(f"reference / fast = {ref['seconds'] / fast['seconds']:.1f} (target >= 5)")
    print(f"fast vs reference, max |logit difference| on 2 variants: {fast['max_abs_diff_vs_reference']:.2e}")
    dense, dense_plain = results["dense_fast"], results["dense_plain_end"]
    print(f"\nworst case, every edge of the model with {DENSE_VARIANTS - 1} random edges removed "
          f"(K = {dense['variants']}, {dense['edges']} edges): fast {dense['seconds']:.2f} s "
          f"({dense['peak_mb'] - dense['base_mb']:.0f} MB), plain with logits at END only "
          f"{dense_plain['seconds']:.2f} s: ratio {dense['seconds'] / dense_plain['seconds']:.2f}")


if __name__ == "__main__":
    main()
