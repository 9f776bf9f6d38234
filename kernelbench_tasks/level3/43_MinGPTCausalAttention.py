"""minGPT's causal multi-head self-attention written out: one Linear makes q, k and v,
scores q @ k^T / sqrt(head_size) are masked with a registered lower-triangular buffer,
softmaxed and applied to v; the heads are joined and projected by a second Linear.
Returns (batch, seq_len, n_embd)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, n_embd, n_head, attn_pdrop, resid_pdrop, max_seqlen):
        super().__init__()
        assert n_embd % n_head == 0
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout = nn.Dropout(attn_pdrop)
        self.resid_dropout = nn.Dropout(resid_pdrop)
        causal = torch.tril(torch.ones(max_seqlen, max_seqlen)).view(1, 1, max_seqlen, max_seqlen)
        self.register_buffer("bias", causal)
        self.n_head = n_head
        self.n_embd = n_embd

    def forward(self, x):
        B, T, C = x.shape
        head = C // self.n_head

        def split_heads(t):  # (B, T, C) -> (B, n_head, T, head)
            return t.view(B, T, self.n_head, head).transpose(1, 2)

        q, k, v = (split_heads(t) for t in self.c_attn(x).split(self.n_embd, dim=2))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(head))
        scores = scores.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        weights = self.attn_dropout(F.softmax(scores, dim=-1))
        y = (weights @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


batch_size = 128
max_seqlen = 1024
seq_len = 512
n_embd = 768
n_head = 8
attn_pdrop = 0.0
resid_pdrop = 0.0

SMALL = {"batch_size": 1, "seq_len": 32, "max_seqlen": 64}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, seq_len, n_embd)]


def get_init_inputs():
    return [n_embd, n_head, attn_pdrop, resid_pdrop, max_seqlen]
