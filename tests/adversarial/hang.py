# expect: timeout: while checking candidate
# Never returns from forward.
import time
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, *args):
        super().__init__()

    def forward(self, x):
        while True:
            time.sleep(0.1)
