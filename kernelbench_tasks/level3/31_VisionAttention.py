"""Self-attention over the pixels of a feature map: (B, C, H, W) is read as a
sequence of H*W tokens of width C, passed through nn.MultiheadAttention
(sequence-first), added back to its input and layer-normalised, then returned
in (B, C, H, W) layout."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        B, C, H, W = x.shape
        seq = x.view(B, C, H * W).permute(2, 0, 1)  # (L, B, C)
        out, _ = self.attn(seq, seq, seq)
        out = self.norm(out + seq)
        return out.permute(1, 2, 0).reshape(B, C, H, W)


embed_dim = 128
num_heads = 4
batch_size = 2
num_channels = embed_dim
image_height = 128
image_width = 128

SMALL = {"batch_size": 1, "image_height": 16, "image_width": 16}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, num_channels, image_height, image_width)]


def get_init_inputs():
    return [embed_dim, num_heads]
