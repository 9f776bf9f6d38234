"""HunyuanVideo causal 3-D VAE decoder (published config: one 64-channel stage), latent -> video.

Causal 3x3x3 conv in, a mid block of ResNet -> single-head self-attention over all
frames*height*width tokens with a frame-causal mask (a token sees its own and earlier
frames) -> ResNet, one up stage of three ResNet blocks (GroupNorm -> SiLU -> causal conv,
twice) followed by nearest-neighbour upsampling (x2 in height and width with this
config; the first frame is upsampled on its own, as the causal design requires) and a
causal conv, then GroupNorm -> SiLU -> conv to out_channels. Causal convs pad two frames
in the past and none in the future, replicate mode. fp32.

The published input is randn(batch_size, T, c_block, hw_over_8, hw_over_8): with
in_channels = 3 the decoder reads its dim 1 (T = 3) as channels and dim 2 (c_block = 16)
as 16 frames, so the mid-block attention spans 16 * 32 * 32 = 16384 tokens.
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


class UpsampleCausal3D(nn.Module):
    """Nearest upsampling by (ft, fh, fw), the first frame only spatially, then a causal conv."""

    def __init__(self, channels: int, factor):
        super().__init__()
        self.factor = tuple(factor)
        self.conv = CausalConv3d(channels, channels, 3)

    def forward(self, x):
        first, rest = x[:, :, :1], x[:, :, 1:]
        first = F.interpolate(first.squeeze(2), scale_factor=self.factor[1:], mode="nearest").unsqueeze(2)
        if rest.shape[2] > 0:
            rest = F.interpolate(rest, scale_factor=self.factor, mode="nearest")
            x = torch.cat([first, rest], dim=2)
        else:
            x = first
        return self.conv(x)


class UpDecoderBlockCausal3D(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_layers: int, groups: int, factor):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlockCausal3D(c_in if i == 0 else c_out, c_out, groups) for i in range(num_layers)
        )
        self.upsampler = UpsampleCausal3D(c_out, factor) if factor is not None else None

    def forward(self, x):
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.upsampler is None else self.upsampler(x)


class Model(nn.Module):
    def __init__(self, block_out_channels=(64,), norm_num_groups: int = 32, in_channels: int = 3,
                 out_channels: int = 3, layers_per_block: int = 2,
                 time_compression_ratio: int = 4, spatial_compression_ratio: int = 8):
        super().__init__()
        self.conv_in = CausalConv3d(in_channels, block_out_channels[-1], 3)
        self.mid_block = UNetMidBlockCausal3D(block_out_channels[-1], norm_num_groups)
        n_spatial = int(math.log2(spatial_compression_ratio))
        n_time = int(math.log2(time_compression_ratio))
        channels = list(reversed(block_out_channels))
        blocks = []
        c_prev = channels[0]
        for i, c_out in enumerate(channels):
            last = i == len(channels) - 1
            up_space = i < n_spatial
            up_time = i >= len(channels) - 1 - n_time and not last
            factor = None
            if up_space or up_time:
                factor = (2 if up_time else 1, 2 if up_space else 1, 2 if up_space else 1)
            blocks.append(UpDecoderBlockCausal3D(c_prev, c_out, layers_per_block + 1, norm_num_groups, factor))
            c_prev = c_out
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[0], eps=1e-6)
        self.conv_out = CausalConv3d(block_out_channels[0], out_channels, 3)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(sample))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


batch_size = 8
C = 3
c_block = 16
T = 3
hw_over_8 = 32
block_out_channels = (64,)
norm_num_groups = 32

# T stays 3 at small size: it is the decoder's channel count (in_channels = 3).
SMALL = {"batch_size": 1, "c_block": 4, "hw_over_8": 8, "block_out_channels": (16,), "norm_num_groups": 4}


def get_inputs():
    return [torch.randn(batch_size, T, c_block, hw_over_8, hw_over_8)]


def get_init_inputs():
    return [block_out_channels, norm_num_groups]
