# task: 2_TinyConvBN
# expect: correct
# For 2_TinyConvBN: BatchNorm always with running statistics (right in eval mode only).
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.bn.running_mean.fill_(0.5)
        self.bn.running_var.fill_(4.0)

    def forward(self, x):
        y = self.conv(x)
        mean = self.bn.running_mean[None, :, None, None]
        std = (self.bn.running_var[None, :, None, None] + self.bn.eps).sqrt()
        return torch.relu((y - mean) / std * self.bn.weight[None, :, None, None] + self.bn.bias[None, :, None, None])
