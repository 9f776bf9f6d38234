# expect: incorrect: output has shape
# rule: shape
# Returns one column too many (the reason names both shapes, which depend on the size run).
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features + 1)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
