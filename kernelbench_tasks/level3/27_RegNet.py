"""RegNet-style classifier: stages of (conv3x3-BN-ReLU) x2 followed by 2x2 max-pool,
then global average pooling (mean over H, W) and a linear layer."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, input_channels, stages, block_widths, output_classes):
        super().__init__()
        blocks = []
        cin = input_channels
        for i in range(stages):
            cout = block_widths[i]
            blocks.append(nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, kernel_size=3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=2, stride=2),
            ))
            cin = cout
        self.feature_extractor = nn.Sequential(*blocks)
        self.fc = nn.Linear(block_widths[-1], output_classes)

    def forward(self, x):
        x = self.feature_extractor(x)
        return self.fc(x.mean(dim=(2, 3)))


batch_size = 8
input_channels = 3
image_height = 224
image_width = 224
stages = 3
block_widths = [64, 128, 256]
output_classes = 10

SMALL = {"batch_size": 1, "image_height": 32, "image_width": 32}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, input_channels, image_height, image_width)]


def get_init_inputs():
    return [input_channels, stages, block_widths, output_classes]
