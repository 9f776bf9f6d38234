"""A Model that reads a module constant at construction (KernelBench's 35_LSTM did)."""

import torch
import torch.nn as nn

batch_size = 6
features = 5

SMALL = {"batch_size": 3}


class Model(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.register_buffer("h0", torch.randn(batch_size, features))

    def forward(self, x):
        return x + self.h0


def get_inputs():
    return [torch.randn(batch_size, features)]


def get_init_inputs():
    return [features]
