"""Swin-MLP (tiny config): Swin Transformer layout (patch embed 4x4, stages of depth
2/2/6/2 with 3/6/12/24 heads, window 7, patch merging between stages) where window
attention is replaced by a per-head spatial MLP over each window, implemented as a
grouped 1x1 Conv1d. Shifted windows are made by zero padding rather than rolling.
Stochastic depth is the identity; dropout rates are 0."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def to_windows(x, ws):
    """(B, H, W, C) -> (B * H/ws * W/ws, ws, ws, C)"""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.contiguous().view(-1, ws, ws, c)


def from_windows(win, ws, h, w):
    """(B * H/ws * W/ws, ws, ws, C) -> (B, H, W, C)"""
    b = win.shape[0] // ((h // ws) * (w // ws))
    x = win.view(b, h // ws, w // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5)
    return x.contiguous().view(b, h, w, -1)


class Mlp(nn.Module):
    def __init__(self, dim, hidden, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SwinMLPBlock(nn.Module):
    def __init__(self, dim, resolution, num_heads, window_size=7, shift_size=0, mlp_ratio=4.0, drop=0.0):
        super().__init__()
        self.dim, self.resolution, self.num_heads = dim, resolution, num_heads
        if min(resolution) <= window_size:
            window_size, shift_size = min(resolution), 0
        assert 0 <= shift_size < window_size
        self.ws, self.shift = window_size, shift_size
        # left, right, top, bottom zero padding for the shifted-window case
        self.pad = (window_size - shift_size, shift_size, window_size - shift_size, shift_size)
        n = num_heads * window_size ** 2
        self.norm1 = nn.LayerNorm(dim)
        self.spatial_mlp = nn.Conv1d(n, n, kernel_size=1, groups=num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x):
        H, W = self.resolution
        B, L, C = x.shape
        ws, nh = self.ws, self.num_heads
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        if self.shift > 0:
            pl, pr, pt, pb = self.pad
            x = F.pad(x, [0, 0, pl, pr, pt, pb])
        Hp, Wp = x.shape[1], x.shape[2]
        win = to_windows(x, ws).view(-1, ws * ws, nh, C // nh).transpose(1, 2)
        win = self.spatial_mlp(win.reshape(-1, nh * ws * ws, C // nh))
        win = win.view(-1, nh, ws * ws, C // nh).transpose(1, 2).reshape(-1, ws, ws, C)
        x = from_windows(win, ws, Hp, Wp)
        if self.shift > 0:
            x = x[:, pt:-pb, pl:-pr, :].contiguous()
        x = shortcut + x.view(B, H * W, C)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat -> LayerNorm(4C) -> Linear(4C, 2C)."""

    def __init__(self, resolution, dim):
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        H, W = self.resolution
        B, L, C = x.shape
        x = x.view(B, H, W, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    def __init__(self, dim, resolution, depth, num_heads, window_size, mlp_ratio, drop, downsample):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinMLPBlock(dim, resolution, num_heads, window_size,
                         0 if i % 2 == 0 else window_size // 2, mlp_ratio, drop)
            for i in range(depth)])
        self.downsample = PatchMerging(resolution, dim) if downsample else None

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, img_size=224, patch_size=4, in_chans=3, embed_dim=96):
        super().__init__()
        self.resolution = (img_size // patch_size, img_size // patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class Model(nn.Module):
    def __init__(self, img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=96,
                 depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, mlp_ratio=4.0,
                 drop_rate=0.0):
        super().__init__()
        n = len(depths)
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.pos_drop = nn.Dropout(drop_rate)
        r = self.patch_embed.resolution
        self.layers = nn.ModuleList([
            BasicLayer(embed_dim * 2 ** i, (r[0] // 2 ** i, r[1] // 2 ** i), depths[i], num_heads[i],
                       window_size, mlp_ratio, drop_rate, downsample=i < n - 1)
            for i in range(n)])
        num_features = embed_dim * 2 ** (n - 1)
        self.norm = nn.LayerNorm(num_features)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(num_features, num_classes)

    def forward(self, x):
        x = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            x = layer(x)
        x = self.avgpool(self.norm(x).transpose(1, 2)).flatten(1)
        return self.head(x)


batch_size = 10
image_size = 224  # the model is built for 224x224 (window 7 needs it), so SMALL keeps it

SMALL = {"batch_size": 1}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, 3, image_size, image_size)]


def get_init_inputs():
    return []
