# strict: incorrect: shared-storage: clone a CUDA graph's static output
# pike: correct
# kernelbench: correct
# Right values on every call, always in the same tensor (as a CUDA graph's static output
# is): a caller that keeps one result sees it overwritten by the next call.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.out = None

    def forward(self, x):
        result = self.fc2(torch.relu(self.fc1(x)))
        if self.out is None:
            self.out = torch.empty_like(result)
        return self.out.copy_(result)
