"""Benchmark of the model backends (issue: the models researchers study). By hand:
`.venv/bin/python bench/bench_models.py` (TransformerLens 4; it also runs the GPT-2 part
under .venv-tl3 for the comparison, when that environment exists).

CPU, BENCH_THREADS threads (default 2), 8 prompts x 16 tokens, resample ablation,
logit difference; times are the fastest of 5 runs, ratios are against a baseline
measured in the same run.

1. A Llama-shape random model with grouped-query attention: Llama-3.2-1B's geometry
   (Hugging Face LlamaConfig: 16 layers, d_model 2048, 32 query heads sharing 8
   key/value heads, d_head 64, gated MLP 8192 wide, RMSNorm, rotary) with a 170-word
   vocabulary instead of 128,256 tokens (which makes the plain forward pass, the
   baseline, cheaper than the real model's), saved with save_pretrained and loaded as a
   user's directory is. A minimality sweep (the circuit and each one-edge-removed
   variant, one batched call) per variant, in plain forward passes (target <= 0.1), of
   the IOI circuit's shape moved onto this geometry (bench/ioi_shape_llama.circ, 168
   edges: a published circuit's size and layout) and, for contrast, of the 120 edges
   EAP ranks highest on these random weights (a dense chain through every layer, which
   no published circuit resembles); EAP in plain forward passes (target <= 2.5).
   BENCH_LLAMA=small uses 8 layers, d_model 512, 8 / 2 heads, MLP 1408 instead (a
   quick run; there a 120-edge circuit is a large part of the model).
2. GPT-2 shape (the zoo's gpt2-random, 12 x 12, d_model 768): the plain forward pass,
   a 100-variant fast-engine call and EAP, under this process's TransformerLens and,
   alternating, under the other one (`--gpt2-only` in .venv-tl3), for the ratio TL 4 /
   TL 3 (target <= 1.1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
B, P = 8, 16


def _fastest(fn, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _session(backend, seed: int = 0):
    import torch

    from circuitlang.eval.session import Session
    from circuitlang.eval.tasks.base import TaskData

    generator = torch.Generator().manual_seed(seed)
    clean = torch.randint(4, backend.d_vocab, (B, P), generator=generator)
    corrupt = torch.randint(4, backend.d_vocab, (B, P), generator=generator)
    answers = torch.randint(4, backend.d_vocab, (2, B), generator=generator)
    return Session(backend, TaskData(clean, corrupt, answers[0], answers[1]), "resample", batch_size=B), clean


def _llama_directory(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests import hf_models

    tokenizer = hf_models.word_tokenizer()
    if os.environ.get("BENCH_LLAMA") == "small":
        geometry = dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
                        num_key_value_heads=2)
    else:  # Llama-3.2-1B
        geometry = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                        num_key_value_heads=8)
    config = LlamaConfig(vocab_size=len(tokenizer), head_dim=64, max_position_embeddings=64, bos_token_id=1,
                         eos_token_id=2, pad_token_id=3, attn_implementation="eager", **geometry)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def llama_backend():
    """The Llama-shape model, saved to a temporary directory and loaded from it as a
    user's directory is."""
    from circuitlang.eval.loading import load_model

    with tempfile.TemporaryDirectory() as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _llama_directory(Path(tmp) / "m")
            return load_model("m", quoted=True, base_dir=Path(tmp))


def llama_part() -> list[tuple[str, str]]:
    import torch

    from circuitlang.core.graph import CircuitGraph
    from circuitlang.discovery.methods.eap import eap_scores
    from circuitlang.eval.evaluator import Evaluator
    rows = []
    backend = llama_backend()
    session, clean = _session(backend)
    with torch.no_grad():
        plain = _fastest(lambda: backend.logits(clean))
    evaluator = Evaluator(session)  # shared, as `circ discover` shares it: m(M) and m(empty) once
    scores = eap_scores(session, evaluator=evaluator)
    eap = _fastest(lambda: eap_scores(session, evaluator=evaluator), runs=3)
    rows += [("model", f"{backend.shape.describe()} ({backend.name}, {type(backend).__name__})"),
             ("engine", session.engine_name),
             ("plain forward, 8 x 16", f"{plain * 1e3:.1f} ms")]
    ioi = None
    if os.environ.get("BENCH_LLAMA") != "small":
        import circuitlang as cl

        ioi = cl.compile_file(ROOT / "bench" / "ioi_shape_llama.circ").circuits["ioi"]
    dense = CircuitGraph.from_edges(sorted(scores, key=lambda e: -abs(scores[e]))[:120])
    for label, circuit in (("IOI-shaped", ioi), ("dense (EAP's top 120)", dense)):
        if circuit is None:
            continue
        variants = [circuit] + [circuit - CircuitGraph.from_edges([e]) for e in circuit.sorted_edges()]
        sweep = _fastest(lambda: evaluator.faithfulness(variants), runs=3)
        rows.append((f"minimality sweep, {label} circuit: {len(circuit.edges)} edges, {len(variants)} variants",
                     f"{sweep * 1e3:.0f} ms = {sweep / len(variants) / plain:.3f} plain forward per variant "
                     "(target <= 0.1)"))
    rows.append(("EAP", f"{eap * 1e3:.0f} ms = {eap / plain:.2f} plain forwards (target <= 2.5)"))
    return rows


def gpt2_part() -> dict[str, float]:
    import torch

    from circuitlang.core.graph import CircuitGraph
    from circuitlang.core.shapes import all_edges
    from circuitlang.discovery.methods.eap import eap_scores
    from circuitlang.eval.evaluator import Evaluator
    from circuitlang.eval.loading import load_model

    backend = load_model("zoo:gpt2-random")
    session, clean = _session(backend)
    edges = all_edges(backend.shape)
    circuit = CircuitGraph.from_edges(edges[::40])
    variants = [circuit] + [circuit - CircuitGraph.from_edges([e]) for e in circuit.sorted_edges()[:99]]
    evaluator = Evaluator(session)
    with torch.no_grad():
        plain = _fastest(lambda: backend.logits(clean))
    return {"plain": plain, "fast_100": _fastest(lambda: evaluator.faithfulness(variants), runs=3),
            "eap": _fastest(lambda: eap_scores(session, evaluator=evaluator), runs=3)}


def _other_env() -> Path | None:
    python = ROOT / ".venv-tl3" / "bin" / "python"
    return python if python.exists() else None


def main() -> None:
    import torch

    from circuitlang.eval.backends.installed import transformer_lens_major

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    if "--gpt2-only" in sys.argv:
        print(json.dumps(gpt2_part()))
        return
    major = transformer_lens_major()
    print(f"TransformerLens {major}.x, {torch.get_num_threads()} threads, batch {B} x {P}\n")
    for what, value in llama_part():
        print(f"| {what} | {value} |")
    other = _other_env() if major == 4 else None
    mine, theirs = [], []
    for _ in range(2 if other else 1):  # alternate, so that the machine's load falls on both
        mine.append(gpt2_part())
        if other:
            out = subprocess.run([str(other), __file__, "--gpt2-only"], capture_output=True, text=True, check=True,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1"})
            theirs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print()
    for key, label in (("plain", "plain forward"), ("fast_100", "fast engine, 100 variants"), ("eap", "EAP")):
        best = min(m[key] for m in mine)
        line = f"| GPT-2 shape: {label} | TL {major}: {best * 1e3:.0f} ms"
        if theirs:
            other_best = min(t[key] for t in theirs)
            line += f"; TL 3: {other_best * 1e3:.0f} ms; TL 4 / TL 3 = {best / other_best:.2f} (target <= 1.1)"
        print(line + " |")


if __name__ == "__main__":
    main()
