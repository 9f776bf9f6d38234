# expect: incorrect: stale output
# rule: stale-output
# Cheat: right only for the input the task's get_inputs() makes under seed 0.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.seen = None

    def forward(self, x):
        if self.seen is None:
            generator = torch.Generator().manual_seed(0)
            shown = torch.randn(x.shape, generator=generator).to(x.device)
            self.seen = self.fc2(torch.relu(self.fc1(shown)))
        return self.seen.clone()
