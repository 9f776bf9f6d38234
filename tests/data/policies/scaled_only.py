# strict: incorrect: scaled-inputs: at scale 2
# seed: 1
# pike: correct
# kernelbench: correct
# Saturates its inputs at +-3.5, as a kernel that assumes the range of the task's own
# get_inputs() might: right on randn inputs, wrong once they are scaled by 2.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.clamp(-3.5, 3.5))))
