"""Mamba-2 SSD (structured state-space duality) reference, chunked form: the sequence
is cut into blocks of block_len; the within-block output (computed, as in the
reference, though not returned), per-block states, and the inter-block recurrence
via exp(segment sums) of A. Returns the final state, (batch, n_heads, d_head, d_state).
A, B and C are parameters sized by batch and sequence length."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, batch_size, seq_length, n_heads, d_head, d_state, block_len=64):
        super().__init__()
        assert seq_length % block_len == 0
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.n_heads = n_heads
        self.d_head = d_head
        self.d_state = d_state
        self.block_len = block_len
        self.A = nn.Parameter(torch.randn(batch_size, seq_length, n_heads))
        self.B = nn.Parameter(torch.randn(batch_size, seq_length, n_heads, d_state))
        self.C = nn.Parameter(torch.randn(batch_size, seq_length, n_heads, d_state))

    @staticmethod
    def segsum(x):
        """out[..., i, j] = x[..., j+1] + ... + x[..., i] for j <= i, -inf above the diagonal."""
        T = x.shape[-1]
        cs = torch.cumsum(x, dim=-1)
        seg = cs[..., :, None] - cs[..., None, :]
        keep = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))
        return seg.masked_fill(~keep, -torch.inf)

    def _blocks(self, t):
        """(b, c*l, ...) -> (b, c, l, ...)"""
        return t.reshape(t.shape[0], -1, self.block_len, *t.shape[2:])

    def forward(self, X, initial_states=None):
        Xb, Ab, Bb, Cb = (self._blocks(t) for t in (X, self.A, self.B, self.C))
        Ab = Ab.permute(0, 3, 1, 2)  # (b, h, c, l)
        A_cumsum = torch.cumsum(Ab, dim=-1)

        # 1. within-block outputs (not part of the returned value)
        L = torch.exp(self.segsum(Ab))
        Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", Cb, Bb, L, Xb)  # noqa: F841

        # 2. state at the end of each block
        decay_states = torch.exp(A_cumsum[:, :, :, -1:] - A_cumsum)
        states = torch.einsum("bclhn,bhcl,bclhp->bchpn", Bb, decay_states, Xb)

        # 3. recurrence across blocks
        if initial_states is None:
            initial_states = torch.zeros_like(states[:, :1])
        states = torch.cat([initial_states, states], dim=1)
        decay_chunk = torch.exp(self.segsum(F.pad(A_cumsum[:, :, :, -1], (1, 0))))
        new_states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
        return new_states[:, -1]


batch_size = 16
seq_length = 128
n_heads = 8
d_head = 64
d_state = 16
block_len = 64

SMALL = {"batch_size": 2}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, seq_length, n_heads, d_head)]


def get_init_inputs():
    return [batch_size, seq_length, n_heads, d_head, d_state, block_len]
