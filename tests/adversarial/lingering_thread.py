# expect: rejected: still running its code
# rule: threads
# Cheat: starts a worker thread at build time that keeps running the candidate's code.
import threading
import time

import torch
import torch.nn as nn


def _spin():
    while True:
        time.sleep(0.01)


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        threading.Thread(target=_spin, daemon=True).start()

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
