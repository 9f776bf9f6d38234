"""A 6-layer batch-first LSTM started from random (h0, c0); the Linear head is applied
to the last time step and its result, (batch, output_size), is returned.

The reference draws h0 and c0 with torch.randn on every call. Here they are drawn once
at construction, after the weights, and kept as buffers: the same seed gives the same
output, and they follow the model to its device. Their batch dimension is the
module's batch_size, read at construction as in KernelBench's earlier version."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, output_size, dropout):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                            dropout=dropout, bidirectional=False)
        self.fc = nn.Linear(hidden_size, output_size)
        self.register_buffer("h0", torch.randn(num_layers, batch_size, hidden_size))
        self.register_buffer("c0", torch.randn(num_layers, batch_size, hidden_size))

    def forward(self, x):
        out, _ = self.lstm(x, (self.h0, self.c0))
        return self.fc(out[:, -1, :])


batch_size = 10
sequence_length = 512
input_size = 128
hidden_size = 256
num_layers = 6
output_size = 10
dropout = 0.0

SMALL = {"batch_size": 2, "sequence_length": 16}


def get_inputs():
    return [torch.rand(batch_size, sequence_length, input_size)]


def get_init_inputs():
    return [input_size, hidden_size, num_layers, output_size, dropout]
