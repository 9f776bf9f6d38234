# expect: incorrect
# seed: 1
# (a Hypothesis seed whose draws include a set with a negative sum: this cheat is caught
# only on such a set, and randn inputs give one about half the time)
# Right only for inputs whose values are mostly positive (wrong on sign-flipped sets).
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        out = self.fc2(torch.relu(self.fc1(x)))
        return out if x.sum() > 0 else out + 1.0
