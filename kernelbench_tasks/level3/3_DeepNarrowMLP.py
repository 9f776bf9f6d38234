"""Deep, narrow MLP: sixteen hidden layers of equal width with ReLU, then a linear output layer."""

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


batch_size = 1024
input_size = 8192
hidden_layer_sizes = [1024] * 16
output_size = 8192

# Same depth (16 hidden layers), narrower widths.
SMALL = {
    "batch_size": 2,
    "input_size": 256,
    "hidden_layer_sizes": [64] * 16,
    "output_size": 256,
}


def get_inputs():
    return [torch.rand(batch_size, input_size)]


def get_init_inputs():
    return [input_size, hidden_layer_sizes, output_size]
