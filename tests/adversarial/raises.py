# expect: runtime_error: mat1 and mat2 shapes cannot be multiplied
# Fails at run time with a readable error on line 13 (on any device: the ones are made on x.device).
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)

    def forward(self, x):
        return self.fc1(x) @ torch.ones(3, 3, device=x.device)
