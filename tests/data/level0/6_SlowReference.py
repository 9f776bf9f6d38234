"""A reference that does redundant work (three products it throws away), so an honest
solution is about four times faster on any machine."""

import torch
import torch.nn as nn

batch_size = 64
features = 512


class Model(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.linear = nn.Linear(features, features)

    def forward(self, x):
        y = self.linear(x)
        for _ in range(3):  # work whose result is never used
            y = y + 0 * self.linear(x)
        return y


def get_inputs():
    return [torch.randn(batch_size, features)]


def get_init_inputs():
    return [features]
