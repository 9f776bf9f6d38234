"""Simplified S4 layer (diagonal state space model) applied as a long convolution.

For each of nHippos channels, d_state // 2 complex-diagonal modes with decay a and
frequency theta give a kernel f[l] = sum_d 2 dt q_d exp(-|a_d| l dt) cos(theta_d l dt)
over the sequence (dt = 1 / (L - 1), q = b * c). The input is convolved with f through an
FFT of length 2L, then a per-channel skip term D * u and the contribution of a learned
initial state x0 are added. Continuous diagonal parametrisation with learned initial
state (the published defaults). fp32.
"""
import math

import torch
import torch.nn as nn


class OurModule(nn.Module):
    """Registers a tensor as a trainable parameter or as a fixed buffer."""

    def register(self, name, tensor, trainable=False):
        if trainable:
            self.register_parameter(name, nn.Parameter(tensor))
        else:
            self.register_buffer(name, tensor)


def causal_fft_conv(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """y[b, c, h, l] = sum_{j <= l} u[b, h, l - j] * kernel[c, h, j], via zero-padded FFTs."""
    n = u.shape[-1]
    u_f = torch.fft.rfft(u, n=2 * n)
    k_f = torch.fft.rfft(kernel, n=2 * n)
    y_f = u_f[:, None] * k_f[None]
    return torch.fft.irfft(y_f, n=2 * n)[..., :n]


class Model(OurModule):
    def __init__(self, nHippos: int, d_state: int = 64, channels: int = 1,
                 dt_min: float = 0.001, dt_max: float = 0.1):
        super().__init__()
        self.h = nHippos
        self.d = d_state // 2
        self.channels = channels
        shape = (channels, self.h, self.d)

        # Chebyshev-like initialisation: log-spaced decay per channel, frequencies k * pi.
        h_scale = torch.exp(torch.arange(self.h) / self.h * math.log(dt_max / dt_min))
        angles = torch.arange(self.d) * math.pi
        theta = torch.ones(channels)[:, None, None] * torch.ones(self.h)[None, :, None] * angles[None, None, :]
        a = -h_scale[None, :, None].expand(shape).clone()
        self.register("theta", theta, trainable=True)
        self.register("a", a, trainable=True)

        self.D = nn.Parameter(torch.randn(channels, self.h))
        self.b = nn.Parameter(torch.randn(shape))
        self.c = nn.Parameter(torch.randn(shape))
        self.x0 = nn.Parameter(torch.randn(shape))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        # u: (batch, nHippos, L) -> (batch, channels * nHippos, L)
        n = u.shape[-1]
        dt = 1.0 / (n - 1)
        z = dt * torch.arange(n, device=u.device).view(1, 1, -1, 1)          # (1, 1, L, 1)
        decay = -self.a.abs()
        basis = 2 * dt * torch.exp(decay.unsqueeze(2) * z) * torch.cos(self.theta.unsqueeze(2) * z)  # (C, H, L, d)
        kernel = ((self.b * self.c).unsqueeze(2) * basis).sum(-1)            # (C, H, L)

        y = causal_fft_conv(u, kernel)                                        # (B, C, H, L)
        y = y + u[:, None] * self.D[None, :, :, None]
        y = y + (2 * (self.c * self.x0).unsqueeze(2) * basis).sum(-1)         # initial-state response
        return y.reshape(y.shape[0], -1, n)


batch_size = 8
nHippos = 16
seq_len = 256

SMALL = {"batch_size": 2, "nHippos": 4, "seq_len": 64}


def get_inputs():
    return [torch.randn(batch_size, nHippos, seq_len)]


def get_init_inputs():
    return [nHippos]
