# strict: incorrect: whole-output: allowed 0.01
# pike: correct
# kernelbench: correct
# Every element within atol (a bias of 0.009), yet off as a whole by several percent:
# only the whole-output rule sees it.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x))) + 0.009
