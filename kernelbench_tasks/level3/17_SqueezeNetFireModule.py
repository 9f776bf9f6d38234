"""SqueezeNet Fire module: 1x1 squeeze + ReLU, then 1x1 and 3x3 expand branches (each + ReLU) concatenated on channels."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_channels, squeeze_channels, expand1x1_channels, expand3x3_channels):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze_channels, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_channels, expand1x1_channels, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_channels, expand3x3_channels, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        s = self.squeeze_activation(self.squeeze(x))
        left = self.expand1x1_activation(self.expand1x1(s))
        right = self.expand3x3_activation(self.expand3x3(s))
        return torch.cat([left, right], dim=1)


batch_size = 10
num_input_features = 3
num_output_features = 64  # listed with the sizes; the model does not use it
height = 224
width = 224
squeeze_channels = 6
expand1x1_channels = 64
expand3x3_channels = 64

SMALL = {"batch_size": 2, "height": 64, "width": 64}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, num_input_features, height, width)]


def get_init_inputs():
    return [num_input_features, squeeze_channels, expand1x1_channels, expand3x3_channels]
