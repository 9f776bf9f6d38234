"""A multi-layer perceptron: Linear+ReLU for each hidden size, then a Linear head."""

import torch
import torch.nn as nn

batch_size = 1
input_size = 1000
layer_sizes = [400, 800]
output_size = 500

SMALL = {"batch_size": 2}
MARKS = ["pike"]


class Model(nn.Module):
    def __init__(self, input_size, layer_sizes, output_size):
        super().__init__()
        layers = []
        width = input_size
        for hidden in layer_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, output_size))
        self.network = nn.Sequential(*layers)

    def forward(self, x):
        return self.network(x)


def get_inputs():
    return [torch.randn(batch_size, input_size)]


def get_init_inputs():
    return [input_size, layer_sizes, output_size]


class ModelNew(Model):
    pass
