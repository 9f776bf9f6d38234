"""Shallow, wide MLP: two large hidden layers with ReLU, then a linear output layer."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, input_size, hidden_layer_sizes, output_size):
        super().__init__()
        modules = []
        width = input_size
        for hidden in hidden_layer_sizes:
            modules += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        modules.append(nn.Linear(width, output_size))
        self.network = nn.Sequential(*modules)

    def forward(self, x):
        return self.network(x)


batch_size = 1
input_size = 1000
hidden_layer_sizes = [2000, 2000]
output_size = 10

SMALL = {"batch_size": 2}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, input_size)]


def get_init_inputs():
    return [input_size, hidden_layer_sizes, output_size]
