"""RWKV-6 ("Finch") language model, one layer of d_model 1024, on 2 x 128 tokens, to logits.

Each block: LayerNorm -> time mix -> residual, LayerNorm -> channel mix -> residual (the
first block also normalises its input). Time mix interpolates each token with its
predecessor using data-dependent low-rank mixing, projects receptance/key/value/gate,
computes a data-dependent per-channel decay w, and runs the WKV-6 linear-attention
recurrence per head (state S <- diag(w_t) S + k_t^T v_t, output r_t (S + diag(u) k_t^T v_t)),
then GroupNorm per head, a SiLU gate and an output projection. Channel mix is a
token-shifted squared-ReLU MLP with a sigmoid receptance gate.

The WKV recurrence is the pure-PyTorch chunked form (the reference's fallback path, not
its CUDA or Triton kernels): within a chunk of up to 128 steps the decays are
re-centred at the chunk's middle and the intra-chunk products are taken in float64,
across chunks a state is carried. Everything else is fp32.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def shift_tokens(x: torch.Tensor) -> torch.Tensor:
    """x[:, t] -> x[:, t - 1], zeros at t = 0."""
    return F.pad(x, (0, 0, 1, -1))


def wkv6_chunked(r, k, v, w, u, chunk_len=128, wide=torch.float64):
    """WKV-6 over (B, H, L, K) inputs; w holds log-decays (w < 0). Returns (B, H, L, V)."""
    b, h, n, kd = k.shape
    vd = v.shape[-1]
    t = chunk_len
    if n % t != 0:
        if n % 2 != 0:
            t = 1
        else:
            while n % t != 0:
                t -= 2
    n_chunks = n // t
    dt = r.dtype

    def chunks(x):
        return x.reshape(b, h, n_chunks, t, x.shape[-1])

    r, k, v = chunks(r), chunks(k), chunks(v)
    log_w = chunks(w.exp().clamp(min=0.005).float().log())           # per-step log decay
    cum = log_w.cumsum(dim=-2)                                          # inclusive prefix sums
    cum_excl = F.pad(cum, (0, 0, 1, -1))                                # exclusive prefix sums
    total = log_w.sum(dim=-2, keepdim=True)

    chunk_decay = total.transpose(-1, -2).exp().to(dt)                 # (b, h, nc, K, 1)
    to_chunk_end = (total - cum).exp().to(dt)
    from_chunk_start = cum_excl.exp().to(dt)

    # Intra-chunk attention: decays relative to the chunk's middle step, in `wide` precision.
    mid = cum_excl[..., t // 2:t // 2 + 1, :]
    r_scaled = r * (cum_excl - mid).to(wide).exp()
    k_scaled = k * (mid - cum).to(wide).exp()
    att = (r_scaled @ k_scaled.transpose(-1, -2)).to(dt).tril(-1)
    bonus = (r * (u.to(dt)[None, :, None, None, :] * k)).sum(-1)       # current-token term
    att = att + torch.diag_embed(bonus)
    out = att @ v

    # Inter-chunk state carried from chunk to chunk.
    chunk_kv = (k * to_chunk_end).transpose(-1, -2) @ v                 # (b, h, nc, K, V)
    state = torch.zeros(b, h, kd, vd, device=r.device, dtype=dt)
    states = []
    for c in range(n_chunks):
        states.append(state)
        state = state * chunk_decay[:, :, c] + chunk_kv[:, :, c]
    states = torch.stack(states, dim=2)
    out = out + (r * from_chunk_start) @ states
    return out.reshape(b, h, n, vd)


class TimeMix(nn.Module):
    MIX_RANK = 32
    DECAY_RANK = 64
    HEAD_SIZE_DIVISOR = 8

    def __init__(self, d_model: int, d_head: int = 64):
        super().__init__()
        self.n_head = d_model // d_head
        d = d_model
        s = 0.1
        self.time_maa_x = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_r = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_w = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_k = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_v = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_g = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_w1 = nn.Parameter(torch.randn(d, self.MIX_RANK * 5) * s)
        self.time_maa_w2 = nn.Parameter(torch.randn(5, self.MIX_RANK, d) * s)
        self.time_decay_w1 = nn.Parameter(torch.randn(d, self.DECAY_RANK) * s)
        self.time_decay_w2 = nn.Parameter(torch.randn(self.DECAY_RANK, d) * s)
        self.time_decay = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_faaaa = nn.Parameter(torch.randn(self.n_head, d_head) * s)
        self.receptance = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.output = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(d, d, bias=False)
        self.ln_x = nn.GroupNorm(self.n_head, d, eps=1e-5 * self.HEAD_SIZE_DIVISOR ** 2)

    def forward(self, x):
        b, n, d = x.shape
        dx = shift_tokens(x) - x
        xxx = torch.tanh((x + dx * self.time_maa_x) @ self.time_maa_w1)          # (B, L, 5 * R)
        xxx = xxx.view(b * n, 5, self.MIX_RANK).transpose(0, 1)                   # (5, B*L, R)
        mw, mk, mv, mr, mg = torch.bmm(xxx, self.time_maa_w2).view(5, b, n, d).unbind(0)
        xw = x + dx * (self.time_maa_w + mw)
        xk = x + dx * (self.time_maa_k + mk)
        xv = x + dx * (self.time_maa_v + mv)
        xr = x + dx * (self.time_maa_r + mr)
        xg = x + dx * (self.time_maa_g + mg)

        r, k, v, g = self.receptance(xr), self.key(xk), self.value(xv), self.gate(xg)
        w = self.time_decay + torch.tanh(xw @ self.time_decay_w1) @ self.time_decay_w2
        w = -w.float().exp()                                                       # log-decay < 0

        def heads(t):
            return t.view(b, n, self.n_head, -1).transpose(1, 2)

        y = wkv6_chunked(heads(r), heads(k), heads(v), heads(w), self.time_faaaa)
        y = self.ln_x(y.transpose(1, 2).reshape(b * n, d)).view(b, n, d)
        return self.output(y * F.silu(g))


class ChannelMix(nn.Module):
    def __init__(self, d_model: int, expand: float = 3.5):
        super().__init__()
        d_ffn = int(d_model * expand)
        self.time_maa_k = nn.Parameter(torch.randn(1, 1, d_model) * 0.1)
        self.time_maa_r = nn.Parameter(torch.randn(1, 1, d_model) * 0.1)
        self.key = nn.Linear(d_model, d_ffn, bias=False)
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_ffn, d_model, bias=False)

    def forward(self, x):
        dx = shift_tokens(x) - x
        xk = x + dx * self.time_maa_k
        xr = x + dx * self.time_maa_r
        return torch.sigmoid(self.receptance(xr)) * self.value(F.relu(self.key(xk)) ** 2)


class Block(nn.Module):
    def __init__(self, d_model: int, d_head: int, expand: float, layer_idx: int):
        super().__init__()
        self.ln0 = nn.LayerNorm(d_model) if layer_idx == 0 else None
        self.ln1 = nn.LayerNorm(d_model)
        self.att = TimeMix(d_model, d_head)
        self.ln2 = nn.LayerNorm(d_model)
        self.ffn = ChannelMix(d_model, expand)

    def forward(self, x):
        if self.ln0 is not None:
            x = self.ln0(x)
        x = x + self.att(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class Model(nn.Module):
    def __init__(self, d_model: int = 1024, n_layer: int = 1, vocab_size: int = 16384,
                 d_head: int = 64, expand: float = 3.5):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, d_model)
        with torch.no_grad():
            self.emb.weight.mul_(0.01)
        self.blocks = nn.ModuleList(Block(d_model, d_head, expand, i) for i in range(n_layer))
        self.ln_out = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.emb(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_out(x))


# The published file declares batch_size = 8 and seq_len = 1024 but feeds (2, 128)
# tokens; these constants hold the shape actually fed.
batch_size = 2
seq_len = 128
d_model = 1024
n_layer = 1
vocab_size = 16384

SMALL = {"batch_size": 2, "seq_len": 32, "d_model": 128, "n_layer": 2, "vocab_size": 256}


def get_inputs():
    return [torch.randint(0, vocab_size, (batch_size, seq_len))]


def get_init_inputs():
    return [d_model, n_layer, vocab_size]
