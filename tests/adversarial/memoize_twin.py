# expect: correct
# Honest twin of memoize: caches what depends only on the weights (a fused weight), never outputs.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.w1t = None

    def forward(self, x):
        if self.w1t is None:
            self.w1t = self.fc1.weight.t().contiguous()
        return self.fc2(torch.relu(torch.addmm(self.fc1.bias, x, self.w1t)))
