"""MobileNetV2: 3x3 stem, seventeen inverted-residual blocks (ReLU6), 1x1 conv to 1280, global pool, linear.

As in the reference, the blocks are plain sequences: no residual addition is applied even
where stride is 1 and the channel count is unchanged.
"""

import torch
import torch.nn as nn


def _divisible(value, divisor=8):
    # Round a channel count to a multiple of divisor without dropping more than 10%.
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _inverted_residual(inp, oup, stride, expand_ratio):
    hidden = int(inp * expand_ratio)
    layers = []
    if expand_ratio != 1:
        layers += [nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
    layers += [
        nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU6(inplace=True),
        nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
    ]
    return nn.Sequential(*layers)


# (expansion t, output channels c, repeats n, first stride s)
_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class Model(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        channels = 32
        last_channels = 1280
        layers = [nn.Conv2d(3, channels, 3, 2, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU6(inplace=True)]
        for t, c, n, s in _SETTINGS:
            out = _divisible(c, 8)
            for i in range(n):
                layers.append(_inverted_residual(channels, out, s if i == 0 else 1, t))
                channels = out
        layers += [
            nn.Conv2d(channels, last_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(last_channels),
            nn.ReLU6(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)),
        ]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(last_channels, num_classes))

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


batch_size = 10
num_classes = 1000
height = 224
width = 224

SMALL = {"batch_size": 2, "height": 64, "width": 64}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, 3, height, width)]


def get_init_inputs():
    return [num_classes]
