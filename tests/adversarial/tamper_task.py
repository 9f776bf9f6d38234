# expect: rejected: static screen: line 12: opens a file for writing
# rule: static-screen
# Cheat: rewrites the reference so that it agrees with the candidate.
import pathlib

import torch
import torch.nn as nn

TASK = next(pathlib.Path(".").rglob("1_TinyMLP.py"), None)
if TASK is not None:
    text = TASK.read_text()
    with open(TASK, "w") as f:
        f.write(text.replace("torch.relu(self.fc1(x))", "self.fc1(x)"))


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(self.fc1(x))
