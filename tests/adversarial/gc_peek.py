# expect: rejected: static screen: line 4: imports gc
# rule: static-screen
# Cheat: looks for the reference's output among live objects and returns a copy.
import gc

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.out_features = out_features

    def forward(self, x):
        shape = (x.shape[0], self.out_features)
        for obj in gc.get_objects():
            if isinstance(obj, torch.Tensor) and tuple(obj.shape) == shape:
                return obj.clone()
        return torch.zeros(shape)
