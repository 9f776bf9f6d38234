"""A tiny MLP for the framework's own tests."""

import torch
import torch.nn as nn

batch_size = 8
in_features = 16
hidden = 32
out_features = 4

SMALL = {"batch_size": 4}


class Model(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, hidden, out_features]
