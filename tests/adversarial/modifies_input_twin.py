# expect: correct
# Honest twin of modifies_input: works in place, on memory of its own.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        h = self.fc1(x)
        h.relu_()
        return self.fc2(h)
