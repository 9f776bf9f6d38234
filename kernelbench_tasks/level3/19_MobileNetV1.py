"""MobileNetV1: 3x3 conv stem, thirteen depthwise-separable conv blocks (BN + ReLU each), 7x7 average pool, linear; widths scale by alpha."""

import torch
import torch.nn as nn


def _conv_bn(inp, oup, stride):
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


def _conv_dw(inp, oup, stride):
    # 3x3 depthwise conv, then 1x1 pointwise conv, each followed by BN and ReLU.
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.ReLU(inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


# (output width before alpha, stride) of the depthwise-separable blocks.
_DW_BLOCKS = [
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
]


class Model(nn.Module):
    def __init__(self, num_classes=1000, input_channels=3, alpha=1.0):
        super().__init__()
        width = int(32 * alpha)
        stack = [_conv_bn(input_channels, width, 2)]
        for channels, stride in _DW_BLOCKS:
            stack.append(_conv_dw(width, int(channels * alpha), stride))
            width = int(channels * alpha)
        # A fixed 7x7 pool: the input must be 224x224 (a 7x7 map after the /32 downsampling).
        stack.append(nn.AvgPool2d(7))
        self.model = nn.Sequential(*stack)
        self.fc = nn.Linear(int(1024 * alpha), num_classes)

    def forward(self, x):
        x = self.model(x)
        return self.fc(x.view(x.size(0), -1))


batch_size = 10
input_channels = 3
height = 224
width = 224
num_classes = 1000
alpha = 1.0

# The fixed 7x7 pool keeps the image at 224x224; alpha narrows every layer instead.
SMALL = {"batch_size": 2, "alpha": 0.5}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, input_channels, height, width)]


def get_init_inputs():
    return [num_classes, input_channels, alpha]
