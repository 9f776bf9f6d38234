# expect: build_error: Read-only file system
# Writes outside its folder through pathlib, which the static screen does not flag.
import pathlib

import torch
import torch.nn as nn

TARGET = "__TARGET__"

with pathlib.Path(TARGET).open("w") as out:
    out.write("written by a candidate")


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
