# The fast solution, deliberately slowed down (a regression gating must catch).
import time

import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.linear = nn.Linear(features, features)

    def forward(self, x):
        time.sleep(0.02)
        return self.linear(x)
