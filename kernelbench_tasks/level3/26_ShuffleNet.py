"""ShuffleNet (groups=3): stem conv + max-pool, three stages of ShuffleNet units
(1x1 group conv, depthwise 3x3, channel shuffle, 1x1 group conv, residual), a 1x1
conv to 1024 channels, global average pooling and a linear classifier."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ChannelShuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        g = self.groups
        return x.view(n, g, c // g, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleNetUnit(nn.Module):
    def __init__(self, in_channels, out_channels, groups=3):
        super().__init__()
        assert out_channels % 4 == 0
        mid = out_channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, 1, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shuffle = ChannelShuffle(groups)
        if in_channels == out_channels:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y = self.shuffle(y)
        y = F.relu(self.bn3(self.conv3(y)))
        return y + self.shortcut(x)


class Model(nn.Module):
    def __init__(self, num_classes=1000, groups=3, stages_repeats=(3, 7, 3),
                 stages_out_channels=(24, 240, 480, 960)):
        super().__init__()
        c = stages_out_channels
        self.conv1 = nn.Conv2d(3, c[0], 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stage2 = self._stage(c[0], c[1], stages_repeats[0], groups)
        self.stage3 = self._stage(c[1], c[2], stages_repeats[1], groups)
        self.stage4 = self._stage(c[2], c[3], stages_repeats[2], groups)
        self.conv5 = nn.Conv2d(c[3], 1024, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(1024)
        self.fc = nn.Linear(1024, num_classes)

    @staticmethod
    def _stage(cin, cout, repeats, groups):
        units = [ShuffleNetUnit(cin, cout, groups)]
        units += [ShuffleNetUnit(cout, cout, groups) for _ in range(repeats - 1)]
        return nn.Sequential(*units)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.stage4(self.stage3(self.stage2(x)))
        x = F.relu(self.bn5(self.conv5(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


batch_size = 10
input_channels = 3
height = 224
width = 224
num_classes = 1000

SMALL = {"batch_size": 1, "height": 32, "width": 32}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, input_channels, height, width)]


def get_init_inputs():
    return [num_classes]
