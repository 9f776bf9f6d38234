# expect: correct
# Honest twin of tamper_task: reads files, writes none.
import pathlib

import torch
import torch.nn as nn

NOTES = [p.name for p in pathlib.Path(".").glob("*.md")]


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
