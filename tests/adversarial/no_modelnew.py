# expect: build_error: defines no ModelNew
# Defines the model under another name.
import torch.nn as nn


class FastModel(nn.Module):
    def forward(self, x):
        return x
