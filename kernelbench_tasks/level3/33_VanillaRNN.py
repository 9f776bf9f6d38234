"""One step of a vanilla RNN cell: the new hidden state is tanh(Linear([x, h])) and
the output is a Linear of the new hidden state; the output is returned."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.h2o = nn.Linear(hidden_size, output_size)
        self.tanh = nn.Tanh()

    def forward(self, x: torch.Tensor, initial_hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.tanh(self.i2h(torch.cat((x, initial_hidden), dim=1)))
        return self.h2o(hidden)


batch_size = 8
input_size = 1024
hidden_size = 256
output_size = 128
sequence_length = 256

SMALL = {"batch_size": 2}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, input_size), torch.randn(batch_size, hidden_size)]


def get_init_inputs():
    return [input_size, hidden_size, output_size]
