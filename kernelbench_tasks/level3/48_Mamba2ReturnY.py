"""Mamba-2 SSD (state-space duality) in its chunked form, returning the output Y,
(batch, seq_length, n_heads, d_head). The sequence is cut into blocks of block_len:
Y is the within-block (diagonal) term, from exp(segment sums) of A, plus the term
carried in from earlier blocks, whose states are passed along by an inter-block
recurrence. A, B and C are parameters sized by batch and sequence length."""

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
        """out[..., i, j] = x[..., j+1] + ... + x[..., i] for j <= i, -inf for j > i."""
        n = x.shape[-1]
        total = torch.cumsum(x, dim=-1)
        diff = total[..., :, None] - total[..., None, :]
        lower = torch.tril(torch.ones(n, n, dtype=torch.bool, device=x.device))
        return diff.masked_fill(~lower, -torch.inf)

    def forward(self, X, initial_states=None):
        b, length = X.shape[:2]
        n_blocks = length // self.block_len

        def to_blocks(t):  # (b, c*l, ...) -> (b, c, l, ...)
            return t.reshape(t.shape[0], n_blocks, self.block_len, *t.shape[2:])

        Xb, Ab, Bb, Cb = (to_blocks(t) for t in (X, self.A, self.B, self.C))
        Ab = Ab.permute(0, 3, 1, 2)  # (b, h, c, l)
        A_cumsum = torch.cumsum(Ab, dim=-1)

        # Within each block: output from the block's own inputs.
        L = torch.exp(self.segsum(Ab))
        Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", Cb, Bb, L, Xb)

        # The state each block leaves behind.
        decay_states = torch.exp(A_cumsum[:, :, :, -1:] - A_cumsum)
        states = torch.einsum("bclhn,bhcl,bclhp->bchpn", Bb, decay_states, Xb)

        # Across blocks: the state entering each block.
        if initial_states is None:
            initial_states = torch.zeros_like(states[:, :1])
        states = torch.cat([initial_states, states], dim=1)
        decay_chunk = torch.exp(self.segsum(F.pad(A_cumsum[:, :, :, -1], (1, 0))))
        entering = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]

        # Output from the entering state, decayed to each position.
        Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", Cb, entering, torch.exp(A_cumsum))

        Y = Y_diag + Y_off
        return Y.reshape(b, length, *Y.shape[3:])


batch_size = 16
seq_length = 128
n_heads = 8
d_head = 64
d_state = 16
block_len = 64

SMALL = {"batch_size": 2}
MARKS = ["pike"]
# A is randn, so exp(cumsum(A)) reaches ~1e16 and some outputs are small differences
# of huge terms: another fp32 summation order (torch.compile's, say) puts a few of the
# ~1e6 outputs outside 1e-2 on many input sets. bf16 or TF32 arithmetic still fails these.
RTOL = 5e-2
ATOL = 1.0


def get_inputs():
    return [torch.randn(batch_size, seq_length, n_heads, d_head)]


def get_init_inputs():
    return [batch_size, seq_length, n_heads, d_head, d_state, block_len]
