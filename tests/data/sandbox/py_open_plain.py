# expect: rejected: static screen: line 8: opens a file for writing
# Writes outside its folder with open(): the static screen stops it before anything runs.
import torch
import torch.nn as nn

TARGET = "__TARGET__"

with open(TARGET, "w") as out:
    out.write("written by a candidate")


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
