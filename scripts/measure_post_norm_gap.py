"""How far a node-level circuit under circuitlang's post-norm semantics (divisors frozen
at the clean run, docs/models.md "Post-norms") is from activation patching that lets the
divisors move, on the random Gemma-2 model of tests/hf_models.py (half of the heads and
MLPs knocked out, resample ablation, 8 random prompts of 9 tokens, float64).

Run: .venv/bin/python scripts/measure_post_norm_gap.py (TransformerLens 4)
"""
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.simplefilter("ignore")
from tests import hf_models
from circuitlang.eval.loading import load_model
from circuitlang.eval.senders import cache_senders
from circuitlang.eval.session import knockout_logits
from circuitlang.eval.backends.base import Site, SiteKind
from circuitlang.core.graph import Node
tmp = Path(tempfile.mkdtemp())
hf_models.save_model("gemma2", tmp / "m")
b = load_model("m", quoted=True, base_dir=tmp, dtype=torch.float64)
g = torch.Generator().manual_seed(1)
clean = torch.randint(4, b.d_vocab, (8, 9), generator=g); corrupt = torch.randint(4, b.d_vocab, (8, 9), generator=g)
named = {"END": torch.full((8,), 8)}
cache = cache_senders(b, corrupt)
inner = [n for n in b.shape.all_nodes() if n.kind in ("head", "mlp")]
out = frozenset(inner[1::2])
frozen = knockout_logits(b, clean, cache, out, named)
# moving divisors: patch z of knocked heads with corrupted z, MLP out with corrupted mlp_out (post-normed in that run)
hooks = []
for layer in range(b.shape.n_layers):
    heads = [n.head for n in out if n.kind == "head" and n.layer == layer]
    if heads:
        def patch(z, layer=layer, heads=heads):
            z = z.clone(); z[:, :, heads] = cache.z[layer][:, :, heads]; return z
        hooks.append((Site(SiteKind.Z, layer), patch))
    if Node.mlp(layer) in out:
        hooks.append((Site(SiteKind.MLP_OUT, layer), lambda x, layer=layer: cache.mlp_out[layer].clone()))
with torch.no_grad():
    moving = b.run_with_hooks(clean, hooks)[torch.arange(8), named["END"]]
clean_logits = b.logits(clean)[torch.arange(8), named["END"]]
gap = (frozen - moving).abs()
print("max |frozen - moving| logit", gap.max().item(), " mean", gap.mean().item(),
      " | logit scale (mean |clean - frozen|)", (clean_logits - frozen).abs().mean().item())
