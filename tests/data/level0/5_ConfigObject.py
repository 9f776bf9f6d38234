"""A config object of the task's own class, replaced at small size (as level-5 tasks do)."""

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class ModelArgs:
    dim: int = 32
    layers: int = 3


model_args = ModelArgs()
batch_size = 4

SMALL = {"model_args": ModelArgs(dim=8, layers=2), "batch_size": 2}


class Model(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(args.dim, args.dim) for _ in range(args.layers))

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def get_inputs():
    return [torch.randn(batch_size, model_args.dim)]


def get_init_inputs():
    return [model_args]
