# expect: incorrect
# needs: cuda
# Cheat (GPU): computes on a side stream and returns without joining it, so the
# timer on the current stream sees only the launch.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.stream = torch.cuda.Stream()

    def forward(self, x):
        with torch.cuda.stream(self.stream):
            torch.cuda._sleep(10_000_000)  # long enough that the output is not ready when read
            return self.fc2(torch.relu(self.fc1(x)))
