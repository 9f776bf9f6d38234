# expect: rejected: static screen: line 2: imports subprocess
import subprocess

import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        subprocess.run(["true"])
        return x
