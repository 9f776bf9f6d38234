# expect: build_error: SyntaxError
import torch


class ModelNew(torch.nn.Module):
    def forward(self, x)
        return x
