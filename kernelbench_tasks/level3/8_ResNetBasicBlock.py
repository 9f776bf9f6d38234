"""A ResNet basic block with a projection shortcut: conv3x3-BN-ReLU, conv3x3-BN, plus a
1x1-conv-BN projection of the input, then ReLU. The first conv and the projection carry
the stride."""

import torch
import torch.nn as nn


class Model(nn.Module):
    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # The projection is always present (in_channels != out_channels at these sizes).
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels * self.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels * self.expansion),
        )
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.downsample(x)
        return self.relu(out)


in_channels = 3
out_channels = 64
stride = 1
batch_size = 10
num_classes = 1000  # unused by the block; kept from the reference's constants
height = 224
width = 224

SMALL = {"batch_size": 2, "height": 64, "width": 64}
MARKS = ["pike"]


def get_inputs():
    # (batch_size, in_channels, 224, 224) at full size.
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, stride]
