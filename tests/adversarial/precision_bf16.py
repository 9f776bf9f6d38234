# expect: correct
# A bfloat16 matmul inside an fp32 task: allowed while the output stays within the
# task's tolerance, and recorded in the result's precision.
import torch
import torch.nn as nn
import torch.nn.functional as F


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        h = torch.relu(self.fc1(x)).to(torch.bfloat16)
        return F.linear(h, self.fc2.weight.to(torch.bfloat16), self.fc2.bias.to(torch.bfloat16)).float()
