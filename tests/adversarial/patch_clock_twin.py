# expect: correct
# Honest twin of patch_clock: reads the clock, changes nothing.
import time

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.calls_since = time.perf_counter()

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
