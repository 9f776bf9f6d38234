"""Convolutional ViT: a strided conv patchifies the image, all patch features are
flattened and projected by one Linear to a single token, a zero-initialised class
token is prepended, six batch-first nn.TransformerEncoderLayers follow, and a linear
head reads the class token."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, num_classes, embed_dim=512, num_heads=8, num_layers=6, mlp_ratio=4.0,
                 patch_size=4, in_channels=3, image_size=32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        num_patches = (image_size // patch_size) ** 2
        self.linear_proj = nn.Linear(embed_dim * num_patches, embed_dim)
        self.transformer_layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model=embed_dim, nhead=num_heads,
                                       dim_feedforward=int(embed_dim * mlp_ratio),
                                       dropout=0.0, batch_first=True)
            for _ in range(num_layers)])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.fc_out = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        B = x.shape[0]
        tok = self.linear_proj(self.conv1(x).flatten(1)).unsqueeze(1)  # (B, 1, E)
        x = torch.cat((self.cls_token.expand(B, -1, -1), tok), dim=1)  # (B, 2, E)
        for layer in self.transformer_layers:
            x = layer(x)
        return self.fc_out(x[:, 0])


batch_size = 10
image_size = 32
embed_dim = 128
in_channels = 3
num_heads = 4
num_classes = 1000

SMALL = {"batch_size": 2}


def get_inputs():
    return [torch.rand(batch_size, in_channels, image_size, image_size)]


def get_init_inputs():
    return [num_classes, embed_dim, num_heads]
