# expect: incorrect
# Cheat: returns memory it never wrote (whatever the allocator hands back).
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.out_features = out_features

    def forward(self, x):
        return torch.empty(x.shape[0], self.out_features, device=x.device)
