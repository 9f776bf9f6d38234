# strict: incorrect: stale-output: returned the result of input set 1
# pike: correct
# kernelbench: incorrect: stale-output
# A cache keyed on nothing: the first call's result, copied, on every later call. One
# call (PIKE's check) cannot see it; a second input set can.
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
