# expect: build_error: KeyError: 'ANTHROPIC_API_KEY'
# Reads the API key from its environment (the allow-list leaves it out).
import os

import torch
import torch.nn as nn

KEY = os.environ["ANTHROPIC_API_KEY"]


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
