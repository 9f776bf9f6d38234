"""A candidate for level3/1_MLP: the same layers, with ReLU applied in place."""

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, input_size, layer_sizes, output_size):
        super().__init__()
        widths = [input_size, *layer_sizes, output_size]
        linears = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
        # Same module order as the reference's Sequential, so the same seed gives the same weights.
        self.network = nn.Sequential(*[m for linear in linears[:-1] for m in (linear, nn.ReLU())], linears[-1])

    def forward(self, x):
        layers = list(self.network)
        for linear in layers[:-1:2]:
            x = torch.relu_(linear(x))
        return layers[-1](x)
