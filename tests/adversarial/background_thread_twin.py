# expect: correct
# Honest twin of background_thread: uses a thread at build time and joins it.
import threading

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        prepared = {}
        worker = threading.Thread(target=lambda: prepared.update(w1t=self.fc1.weight.detach().t().contiguous()))
        worker.start()
        worker.join()
        self.register_buffer("w1t", prepared["w1t"])

    def forward(self, x):
        return self.fc2(torch.relu(torch.addmm(self.fc1.bias, x, self.w1t)))
