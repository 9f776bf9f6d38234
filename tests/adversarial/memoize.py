# expect: incorrect: stale output: on input set 2 it returned the result of input set 1
# rule: stale-output
# Cheat: computes once, then returns the same tensor on every call.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.cached = None

    def forward(self, x):
        if self.cached is None:
            self.cached = self.fc2(torch.relu(self.fc1(x)))
        return self.cached
