# expect: correct
# needs: cuda
# Honest twin of side_stream: uses a side stream and joins it before returning.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.stream = torch.cuda.Stream()

    def forward(self, x):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = self.fc2(torch.relu(self.fc1(x)))
        torch.cuda.current_stream().wait_stream(self.stream)
        return out
