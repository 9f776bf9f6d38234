"""DeepSeek-V3 mixture-of-experts layer, large batch (8 x 1024 tokens: prefill-like).

A softmax router over 64 routed SwiGLU experts keeps the top 6 per token and weights
each kept expert by its router probability; two shared experts (one SwiGLU of twice the
expert width) see every token. Experts run one after another over the tokens routed to
them. The bf16 GEMM path of the reference (no fp8 kernels); bf16 as the config says.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPE = torch.bfloat16


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
    q_lora_rank: int = 0
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


class Linear(nn.Module):
    """Bias-free projection, weights N(0, 1/in_features), bf16."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features, dtype=DTYPE) * in_features ** -0.5)

    def forward(self, x):
        return F.linear(x, self.weight)


class MLP(nn.Module):
    """SwiGLU feed-forward: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, inter_dim: int):
        super().__init__()
        self.w1 = Linear(dim, inter_dim)
        self.w2 = Linear(inter_dim, dim)
        self.w3 = Linear(dim, inter_dim)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Expert(MLP):
    pass


class Gate(nn.Module):
    """Router: scores all routed experts, keeps the top-k, weights them by their scores.

    Gate rows are N(0, 1/dim) like every other projection here (the published task draws
    them N(0, 1), which makes router logits of std ~45: a near one-hot softmax whose
    top-1/top-2 split then flips with any rounding of its input). Logits are computed in
    fp32 from the bf16 weights, as Hugging Face's DeepSeek-V3 router does, so the routing
    does not depend on a GEMM kernel's bf16 rounding.
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.topk = args.n_activated_experts
        self.n_groups = args.n_expert_groups
        self.topk_groups = args.n_limited_groups
        self.score_func = args.score_func
        self.route_scale = args.route_scale
        self.weight = nn.Parameter(torch.randn(args.n_routed_experts, args.dim, dtype=DTYPE) * args.dim ** -0.5)

    def forward(self, x):
        scores = F.linear(x.float(), self.weight.float())
        if self.score_func == "softmax":
            scores = scores.softmax(dim=-1, dtype=torch.float32)
        else:
            scores = scores.sigmoid()
        original = scores
        if self.n_groups > 1:
            grouped = scores.view(x.size(0), self.n_groups, -1)
            best_groups = grouped.amax(dim=-1).topk(self.topk_groups, dim=-1)[1]
            keep = torch.zeros_like(grouped[..., 0]).scatter_(1, best_groups, 1.0)
            scores = (grouped * keep.unsqueeze(-1)).flatten(1)
        chosen = scores.topk(self.topk, dim=-1)[1]
        weights = original.gather(1, chosen)
        if self.score_func == "sigmoid":
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights * self.route_scale
        return weights.type_as(x), chosen


class Model(nn.Module):
    """Mixture-of-experts FFN: routed experts (one pass per expert over its tokens) + shared experts."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dim = args.dim
        self.n_routed_experts = args.n_routed_experts
        self.gate = Gate(args)
        self.experts = nn.ModuleList(Expert(args.dim, args.moe_inter_dim) for _ in range(args.n_routed_experts))
        self.shared_experts = MLP(args.dim, args.n_shared_experts * args.moe_inter_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.gate.weight.dtype)
        shape = x.shape
        x = x.reshape(-1, self.dim)
        weights, chosen = self.gate(x)
        y = torch.zeros_like(x)
        counts = torch.bincount(chosen.flatten(), minlength=self.n_routed_experts).tolist()
        for e, n in enumerate(counts):
            if n == 0:
                continue
            rows, slot = torch.where(chosen == e)
            y[rows] += self.experts[e](x[rows]) * weights[rows, slot, None]
        return (y + self.shared_experts(x)).view(shape)


batch_size = 8
seq_len = 1024
model_args = ModelArgs()

# One bf16 MoE layer: three chained bf16 GEMMs per expert, then the weighted sum of
# 6 routed expert outputs plus the shared-expert MLP. On an H200 the same weights run
# in fp32 differed from this reference by at most 0.021 on outputs up to ~3.4
# (max |d| / (1 + |ref|) = 0.012). 5e-2 leaves ~4x room for a faithful reordering
# (grouped GEMMs, fp32 accumulation) and still catches a wrong route, routing weight
# or activation.
# At the CPU size, torch.compile's own reordering of the bf16 sums came out 0.09 off on
# one element of 1024 (expected 0.53, CI on 2026-11-30): 1e-1 admits that, and a wrong
# route, weight or activation still moves whole rows far beyond it.
ATOL = 1e-1
RTOL = 1e-1

SMALL = {
    "batch_size": 2,
    "seq_len": 8,
    "model_args": ModelArgs(dim=64, moe_inter_dim=32, n_routed_experts=8, n_activated_experts=2),
}


def get_inputs():
    return [torch.randn(batch_size, seq_len, model_args.dim, dtype=torch.bfloat16)]


def get_init_inputs():
    return [model_args]
