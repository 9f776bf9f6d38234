# expect: runtime_error: mat1 and mat2 shapes cannot be multiplied
# Fails at run time with a readable error on line 12.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)

    def forward(self, x):
        return self.fc1(x) @ torch.ones(3, 3, device=x.device)  # on x.device: the same error on a GPU
