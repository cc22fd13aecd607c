"""Train the zoo's trained model, `zoo:induction-trained`, deterministically on the CPU.

    .venv-tl3/bin/python scripts/train_zoo.py            # writes circuitlang/eval/zoo/weights/ (TransformerLens 3.x)
    .venv-tl3/bin/python scripts/train_zoo.py --check    # retrain and compare with the shipped file
    .venv-tl3/bin/python scripts/train_zoo.py --phase    # the same run's checkpoints across the phase change
    .venv-tl3/bin/python scripts/train_zoo.py --phase --check

With --phase it writes checkpoints of the same training run at the steps in PHASE_STEPS
to stdlib/zoo/induction_phase/step-NNNNN/ (config.json with HookedTransformerConfig
fields, model.safetensors, and trainer_state.json with the step and the loss on the
repeated half of a fixed held-out batch): the induction phase change of Olsson et al.
(2022), where that loss falls from ~2.3 to ~0.15 between steps 100 and 180 as a
previous-token head and induction heads form. The last checkpoint is bit-identical to
zoo:induction-trained. `circ track` on them is the ground truth of docs/training.md.

A 2-layer attention-only transformer (4 heads, d_model 64, LayerNorm) learns to continue
a repeated random sequence: `BOS A A` where A is 3-15 distinct random tokens (length drawn
per sequence, so no fixed offset solves it) and the loss is on the repeat. That needs
induction; which heads do it was found afterwards by activation patching
(scripts/find_zoo_circuit.py -> stdlib/zoo/induction_trained.circ).

Determinism: one thread, torch.use_deterministic_algorithms, a fixed seed for the
initialisation and a private generator for the data. Same machine type, same torch
version -> bit-identical weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAME = "induction-trained"
CONFIG = dict(n_layers=2, d_model=64, n_ctx=32, d_head=16, n_heads=4, d_vocab=32, attn_only=True,
              normalization_type="LN", positional_embedding_type="standard")
PHASE_STEPS = (0, 60, 100, 120, 130, 140, 150, 160, 180, 200, 400, 1200)
PHASE_DIR = ROOT / "stdlib" / "zoo" / "induction_phase"
TRAINING = dict(seed=0, steps=1200, batch=64, seq_len=32, min_half=3, max_half=15, lr=3e-3, weight_decay=0.01,
                warmup=100)


def batch(gen: torch.Generator, size: int, seq_len: int, vocab: int, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences BOS A A ... (cut to seq_len) and a mask of the positions whose next token is
    determined by induction (every position from the second copy's first token on)."""
    half = torch.randint(lo, hi + 1, (size,), generator=gen)
    perm = torch.rand(size, vocab - 1, generator=gen).argsort(dim=1) + 1  # distinct non-BOS tokens
    pos = torch.arange(seq_len - 1)
    index = pos[None, :] % half[:, None]  # A repeated: token i of the body is A[i mod half]
    body = perm.gather(1, index)
    tokens = torch.cat([torch.zeros(size, 1, dtype=torch.long), body], dim=1)
    # prediction at position p (predicting token p+1) is an induction step once p >= half + 1
    predictable = torch.arange(seq_len)[None, :] >= (half[:, None] + 1)
    predictable[:, -1] = False
    return tokens, predictable


def repeat_loss(model, tokens: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean next-token loss over the positions only induction can predict."""
    with torch.no_grad():
        logp = model(tokens)[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    return float(-(logp * mask[:, :-1]).sum() / mask[:, :-1].sum())


def train(log: bool = True, save_at: tuple[int, ...] = (), on_checkpoint=None) -> tuple[dict[str, torch.Tensor], dict]:
    """Train; with `save_at`, call on_checkpoint(step, state, held-out repeat loss) after
    that many optimiser steps (0: at initialisation). The held-out batch comes from its
    own generator, so checkpointing leaves the training run itself unchanged."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t = TRAINING
    torch.manual_seed(t["seed"])
    cfg = HookedTransformerConfig(**CONFIG, seed=t["seed"], init_weights=True)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    gen = torch.Generator().manual_seed(t["seed"] + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / t["warmup"]) * max(0.05, 1 - s / t["steps"]))
    held_out = batch(torch.Generator().manual_seed(t["seed"] + 2), 256, t["seq_len"], CONFIG["d_vocab"],
                     t["min_half"], t["max_half"])

    def checkpoint(step: int) -> None:
        if step in save_at:
            state = {k: v.detach().clone().contiguous() for k, v in model.named_parameters()}
            on_checkpoint(step, state, repeat_loss(model, *held_out))

    checkpoint(0)
    start = time.time()
    for step in range(t["steps"]):
        tokens, mask = batch(gen, t["batch"], t["seq_len"], CONFIG["d_vocab"], t["min_half"], t["max_half"])
        logits = model(tokens)
        logp = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
        loss = -(logp * mask[:, :-1]).sum() / mask[:, :-1].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        checkpoint(step + 1)
        if log and (step % 250 == 0 or step == t["steps"] - 1):
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - start:5.1f} s", flush=True)
    seconds = time.time() - start
    state = {k: v.detach().clone().contiguous() for k, v in model.named_parameters()}
    return state, {**CONFIG, "training": {**t, "seconds": round(seconds, 1), "final_loss": round(loss.item(), 4),
                                          "torch": torch.__version__}}


def write_phase(folder: Path = PHASE_DIR, check: bool = False) -> bool:
    """Write (or, with `check`, compare with) the phase-change checkpoints; True when the
    written files equal what is there (always True when writing)."""
    from safetensors.torch import load_file, save_file

    same = True

    def save(step: int, state: dict, loss: float) -> None:
        nonlocal same
        target = folder / f"step-{step:05d}"
        meta = {"global_step": step, "repeat_loss": round(loss, 4),
                "about": "loss: mean next-token loss on the repeated half of 256 held-out sequences "
                         "(scripts/train_zoo.py --phase)"}
        if check:
            shipped = load_file(str(target / "model.safetensors"))
            equal = shipped.keys() == state.keys() and all(torch.equal(shipped[k], state[k]) for k in state)
            print(f"step {step:5d}: identical {equal}; repeat loss {loss:.4f}")
            same = same and equal
            return
        target.mkdir(parents=True, exist_ok=True)
        save_file(state, str(target / "model.safetensors"))
        (target / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n", encoding="utf-8")
        (target / "trainer_state.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        print(f"step {step:5d}: repeat loss {loss:.4f} -> {target.relative_to(ROOT)}", flush=True)

    train(log=False, save_at=PHASE_STEPS, on_checkpoint=save)
    return same


def main() -> int:
    from safetensors.torch import load_file, save_file

    from circuitlang.eval.zoo.trained import paths

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="retrain and compare with the shipped weights")
    parser.add_argument("--phase", action="store_true",
                        help="write the checkpoints across the induction phase change instead")
    args = parser.parse_args()
    if args.phase:
        return 0 if write_phase(check=args.check) else 1
    state, config = train()
    weights, config_path = paths(NAME)
    if args.check:
        shipped = load_file(str(weights))
        same = shipped.keys() == state.keys() and all(torch.equal(shipped[k], state[k]) for k in state)
        worst = max(float((shipped[k] - state[k]).abs().max()) for k in state) if shipped.keys() == state.keys() else None
        print(f"identical to {weights.relative_to(ROOT)}: {same} (max abs difference {worst})")
        return 0 if same else 1
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(weights))
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {weights.relative_to(ROOT)} ({weights.stat().st_size // 1024} KiB) and "
          f"{config_path.relative_to(ROOT)}; trained in {config['training']['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
