"""DeepSeek-V3 multi-head latent attention (MLA), one prefill pass over a sequence.

Queries go through a low-rank bottleneck (q_lora_rank) with RMSNorm, keys and values
through a shared compressed latent (kv_lora_rank) plus a decoupled rotary part that is
shared by all heads. Rotary frequencies carry the YaRN correction and the softmax scale
the matching mscale term. Causal attention over the whole sequence, bf16 as the config's
dtype says.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelArgs:
    max_batch_size: int = 8
    max_seq_len: int = 4096 * 4
    dtype: str = "bf16"
    vocab_size: int = 102400
    dim: int = 2048
    inter_dim: int = 10944
    moe_inter_dim: int = 1408
    n_layers: int = 27
    n_dense_layers: int = 1
    n_heads: int = 16
    n_routed_experts: int = 64
    n_shared_experts: int = 2
    n_activated_experts: int = 6
    n_expert_groups: int = 1
    n_limited_groups: int = 1
    score_func: str = "softmax"
    route_scale: float = 1.0
    q_lora_rank: int = 1536
    kv_lora_rank: int = 512
    qk_nope_head_dim: int = 128
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128
    original_seq_len: int = 4096
    rope_theta: float = 10000.0
    rope_factor: float = 40
    beta_fast: int = 32
    beta_slow: int = 1
    mscale: float = 1.0


def yarn_rope_table(args: ModelArgs) -> torch.Tensor:
    """Unit complex rotations, shape (max_seq_len, qk_rope_head_dim // 2), complex64."""
    dim = args.qk_rope_head_dim
    inv_freq = 1.0 / (args.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if args.max_seq_len > args.original_seq_len:
        def boundary(rotations):
            return dim * math.log(args.original_seq_len / (rotations * 2 * math.pi)) / (2 * math.log(args.rope_theta))

        low = max(math.floor(boundary(args.beta_fast)), 0)
        high = min(math.ceil(boundary(args.beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
        inv_freq = inv_freq / args.rope_factor * ramp + inv_freq * (1 - ramp)
    angles = torch.outer(torch.arange(args.max_seq_len, dtype=torch.float32), inv_freq)
    return torch.polar(torch.ones_like(angles), angles)


def rotate(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of x (B, S, H, D) by freqs (S, D // 2), in fp32."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    out = torch.view_as_real(pairs * freqs.view(1, pairs.shape[1], 1, pairs.shape[-1]))
    return out.flatten(3).to(x.dtype)


class Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        dt = torch.bfloat16
        self.n_heads = args.n_heads
        self.nope_dim = args.qk_nope_head_dim
        self.rope_dim = args.qk_rope_head_dim
        self.v_dim = args.v_head_dim
        self.kv_rank = args.kv_lora_rank
        qk_dim = self.nope_dim + self.rope_dim
        self.wq_a = nn.Linear(args.dim, args.q_lora_rank, dtype=dt)
        self.q_norm = nn.RMSNorm(args.q_lora_rank, eps=1e-6, dtype=dt)
        self.wq_b = nn.Linear(args.q_lora_rank, args.n_heads * qk_dim, dtype=dt)
        self.wkv_a = nn.Linear(args.dim, args.kv_lora_rank + self.rope_dim, dtype=dt)
        self.kv_norm = nn.RMSNorm(args.kv_lora_rank, eps=1e-6, dtype=dt)
        self.wkv_b = nn.Linear(args.kv_lora_rank, args.n_heads * (self.nope_dim + self.v_dim), dtype=dt)
        self.wo = nn.Linear(args.n_heads * self.v_dim, args.dim, dtype=dt)
        scale = qk_dim ** -0.5
        if args.max_seq_len > args.original_seq_len:
            m = 0.1 * args.mscale * math.log(args.rope_factor) + 1.0
            scale = scale * m * m
        self.softmax_scale = scale

    def forward(self, x: torch.Tensor, start_pos: int, freqs_cis: torch.Tensor) -> torch.Tensor:
        # start_pos is part of the published signature; without a cache it only
        # selects freqs_cis, which the caller has already sliced.
        x = x.to(self.wq_a.weight.dtype)
        b, s, _ = x.shape
        q = self.wq_b(self.q_norm(self.wq_a(x))).view(b, s, self.n_heads, -1)
        q_nope, q_rope = q.split([self.nope_dim, self.rope_dim], dim=-1)
        q = torch.cat([q_nope, rotate(q_rope, freqs_cis)], dim=-1)

        latent, k_rope = self.wkv_a(x).split([self.kv_rank, self.rope_dim], dim=-1)
        k_rope = rotate(k_rope.unsqueeze(2), freqs_cis)
        kv = self.wkv_b(self.kv_norm(latent)).view(b, s, self.n_heads, -1)
        k_nope, v = kv.split([self.nope_dim, self.v_dim], dim=-1)
        k = torch.cat([k_nope, k_rope.expand(-1, -1, self.n_heads, -1)], dim=-1)

        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            is_causal=True, scale=self.softmax_scale,
        )
        return self.wo(out.transpose(1, 2).reshape(b, s, -1))


batch_size = 8
seq_len = 1024
model_args = ModelArgs()

# bf16 MLA: two low-rank projections with RMSNorm, a 1024-key causal softmax, five
# bf16 GEMMs. On an H200 the same weights run in fp32 differed from this reference by
# at most 0.0053 on outputs up to 1.5 (max |d| / (1 + |ref|) = 0.0035). 2e-2 (the bf16
# default, twice the fp32 one) leaves ~6x room for a faithful reordering (flash
# attention, fused or fp32-accumulated projections).
ATOL = 2e-2
RTOL = 2e-2

SMALL = {
    "batch_size": 2,
    "seq_len": 16,
    "model_args": ModelArgs(
        max_seq_len=64, original_seq_len=32, dim=64, n_heads=4, q_lora_rank=48,
        kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
    ),
}


def get_inputs():
    freqs_cis = yarn_rope_table(model_args)
    x = torch.randn(batch_size, seq_len, model_args.dim, dtype=torch.bfloat16)
    return [x, 0, freqs_cis[:seq_len]]


def get_init_inputs():
    return [model_args]
