"""DenseNet dense block: each layer (BN -> ReLU -> 3x3 conv -> dropout) sees the concatenation of all earlier outputs."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, num_layers: int, num_input_features: int, growth_rate: int):
        super().__init__()
        self.layers = nn.ModuleList(
            self._dense_layer(num_input_features + k * growth_rate, growth_rate) for k in range(num_layers)
        )

    @staticmethod
    def _dense_layer(in_features: int, growth_rate: int):
        return nn.Sequential(
            nn.BatchNorm2d(in_features),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_features, growth_rate, kernel_size=3, padding=1, bias=False),
            nn.Dropout(0.0),
        )

    def forward(self, x):
        # Output channels: num_input_features + num_layers * growth_rate.
        collected = [x]
        for layer in self.layers:
            collected.append(layer(x))
            x = torch.cat(collected, dim=1)
        return x


batch_size = 10
num_layers = 6
num_input_features = 32
growth_rate = 32
height = 224
width = 224

SMALL = {"batch_size": 2, "height": 64, "width": 64}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, num_input_features, height, width)]


def get_init_inputs():
    return [num_layers, num_input_features, growth_rate]
