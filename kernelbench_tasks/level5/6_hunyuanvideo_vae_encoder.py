"""HunyuanVideo causal 3-D VAE encoder (published config: one 64-channel stage), video -> latent moments.

Causal 3x3x3 convolutions (replicate padding, two frames of padding in the past and
none in the future), ResNet blocks of GroupNorm -> SiLU -> conv twice, a down stage
(spatial stride 2 with this config; the time stride rule needs more stages), then a
mid block of ResNet -> single-head self-attention over all frames*height*width tokens
with a frame-causal mask (a token sees its own and earlier frames) -> ResNet, and
GroupNorm -> SiLU -> conv to 2 * out_channels (mean and log-variance). fp32.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalConv3d(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride=1, bias: bool = True):
        super().__init__()
        k = kernel_size
        self.pad = (k // 2, k // 2, k // 2, k // 2, k - 1, 0)        # W, H, then T (past only)
        self.conv = nn.Conv3d(c_in, c_out, k, stride=stride, bias=bias)

    def forward(self, x):
        return self.conv(F.pad(x, self.pad, mode="replicate"))


class ResnetBlockCausal3D(nn.Module):
    def __init__(self, c_in: int, c_out: int, groups: int, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=eps)
        self.conv1 = CausalConv3d(c_in, c_out, 3)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=eps)
        self.conv2 = CausalConv3d(c_out, c_out, 3)
        self.conv_shortcut = CausalConv3d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h


class DownsampleCausal3D(nn.Module):
    def __init__(self, channels: int, stride):
        super().__init__()
        self.conv = CausalConv3d(channels, channels, 3, stride=stride)

    def forward(self, x):
        return self.conv(x)


class AttentionCausal3D(nn.Module):
    """Residual single-head (head_dim = channels) attention over (T*H*W) tokens, frame-causal."""

    def __init__(self, channels: int, groups: int, head_dim: int, eps: float = 1e-6):
        super().__init__()
        self.heads = channels // head_dim
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x):
        b, c, t, h, w = x.shape
        n = t * h * w
        frame = torch.arange(t, device=x.device).repeat_interleave(h * w)
        visible = frame[None, :] <= frame[:, None]                      # (N, N) query x key
        y = self.group_norm(x.reshape(b, c, n)).transpose(1, 2)         # (B, N, C)
        q, k, v = (proj(y).view(b, n, self.heads, -1).transpose(1, 2) for proj in (self.to_q, self.to_k, self.to_v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
        y = self.to_out(y.transpose(1, 2).reshape(b, n, c))
        return x + y.transpose(1, 2).reshape(b, c, t, h, w)


class UNetMidBlockCausal3D(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlockCausal3D(channels, channels, groups),
                                      ResnetBlockCausal3D(channels, channels, groups)])
        self.attentions = nn.ModuleList([AttentionCausal3D(channels, groups, head_dim=channels)])

    def forward(self, x):
        x = self.resnets[0](x)
        return self.resnets[1](self.attentions[0](x))


class DownEncoderBlockCausal3D(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_layers: int, groups: int, stride):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlockCausal3D(c_in if i == 0 else c_out, c_out, groups) for i in range(num_layers)
        )
        self.downsampler = DownsampleCausal3D(c_out, stride) if stride is not None else None

    def forward(self, x):
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsampler is None else self.downsampler(x)


class Model(nn.Module):
    def __init__(self, block_out_channels=(64,), norm_num_groups: int = 32, in_channels: int = 3,
                 out_channels: int = 3, layers_per_block: int = 2, double_z: bool = True,
                 time_compression_ratio: int = 4, spatial_compression_ratio: int = 8):
        super().__init__()
        self.conv_in = CausalConv3d(in_channels, block_out_channels[0], 3)
        n_spatial = int(math.log2(spatial_compression_ratio))
        n_time = int(math.log2(time_compression_ratio))
        blocks = []
        c_prev = block_out_channels[0]
        for i, c_out in enumerate(block_out_channels):
            last = i == len(block_out_channels) - 1
            down_space = i < n_spatial
            down_time = i >= len(block_out_channels) - 1 - n_time and not last
            stride = None
            if down_space or down_time:
                stride = (2 if down_time else 1, 2 if down_space else 1, 2 if down_space else 1)
            blocks.append(DownEncoderBlockCausal3D(c_prev, c_out, layers_per_block, norm_num_groups, stride))
            c_prev = c_out
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = UNetMidBlockCausal3D(block_out_channels[-1], norm_num_groups)
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[-1], eps=1e-6)
        self.conv_out = CausalConv3d(block_out_channels[-1], 2 * out_channels if double_z else out_channels, 3)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(sample)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


batch_size = 8
C = 3
T = 8
H = 64
W = 64
block_out_channels = (64,)
norm_num_groups = 32

SMALL = {"batch_size": 1, "T": 3, "H": 16, "W": 16, "block_out_channels": (16,), "norm_num_groups": 4}


def get_inputs():
    return [torch.randn(batch_size, C, T, H, W)]


def get_init_inputs():
    return [block_out_channels, norm_num_groups]
