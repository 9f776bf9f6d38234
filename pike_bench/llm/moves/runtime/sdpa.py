"""minGPT attention rewritten to scaled_dot_product_attention, pasted into a candidate
by the ``sdpa`` move (see :mod:`pike_bench.llm.moves.runtime.wrappers` for how).
"""

import torch as _pike_torch

# --- minGPT attention ---
# minGPT's CausalSelfAttention (c_attn, c_proj, n_head, n_embd, a lower-triangular
# "bias" buffer) with SDPA in place of the explicit softmax(q @ k^T) @ v. A module is
# rewritten only if it has those parts and its new forward matches the old one on a
# probe input (drawn from a generator of its own: the weights' seed is left alone).

def _pike_sdpa_forward(self, x):
    B, T, C = x.size()
    q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
    q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
    y = _pike_torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    y = self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
    dropout = getattr(self, "resid_dropout", None)
    return dropout(y) if dropout is not None else y


def _pike_sdpa_fits(module):
    linear = _pike_torch.nn.Linear
    mask = getattr(module, "bias", None)
    return (
        isinstance(getattr(module, "c_attn", None), linear)
        and isinstance(getattr(module, "c_proj", None), linear)
        and isinstance(getattr(module, "n_head", None), int)
        and getattr(module, "n_embd", None) == module.c_attn.in_features
        and module.c_attn.out_features == 3 * module.n_embd
        and getattr(getattr(module, "attn_dropout", None), "p", 0.0) == 0.0
        and isinstance(mask, _pike_torch.Tensor) and mask.dim() == 4
        and bool((mask[0, 0] == _pike_torch.tril(_pike_torch.ones_like(mask[0, 0]))).all())
    )


_PIKE_SDPA_CLASSES = {}


def _pike_use_sdpa(model):
    """Rewrite the attention modules that fit; returns how many were rewritten."""
    rewritten = 0
    for module in list(model.modules()):
        if not _pike_sdpa_fits(module):
            continue
        old_class, training = type(module), module.training
        if old_class not in _PIKE_SDPA_CLASSES:
            _PIKE_SDPA_CLASSES[old_class] = type(old_class.__name__ + "SDPA", (old_class,), {"forward": _pike_sdpa_forward})
        new_class = _PIKE_SDPA_CLASSES[old_class]
        generator = _pike_torch.Generator().manual_seed(0)
        T = min(16, module.bias.size(-1))
        probe = _pike_torch.randn(2, T, module.n_embd, generator=generator).to(module.c_attn.weight)
        module.eval()
        with _pike_torch.no_grad():
            want = module(probe)
            module.__class__ = new_class
            same = _pike_torch.allclose(module(probe), want, atol=1e-4, rtol=1e-4)
        module.train(training)
        if same:
            rewritten += 1
        else:
            module.__class__ = old_class
    return rewritten
