# expect: incorrect: modified its input 0 in place
# rule: modified-inputs
# Right output, but computed by overwriting its input.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        out = self.fc2(torch.relu(self.fc1(x)))
        x.zero_()
        return out
