# expect: incorrect: stale output
# rule: stale-output
# Cheat: computes once, then returns a copy of that first result on every call.
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
        return self.cached.clone()
