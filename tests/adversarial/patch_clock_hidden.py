# expect: rejected: replaced the harness's clock: time.perf_counter
# rule: clock
# Cheat: stops the clock through an alias the static screen does not follow; the runtime check does.
import time as clocks

import torch
import torch.nn as nn

frozen = clocks
frozen.perf_counter = lambda: 0.0


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
