# expect: incorrect: NaN where the reference has a number
# rule: nan-inf
# Right values except one NaN.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        out = self.fc2(torch.relu(self.fc1(x)))
        out[0, 1] = float("nan")
        return out
