# expect: rejected: started a thread while running
# rule: threads
# Cheat: returns at once and fills the output from a thread, outside the timed region.
import threading

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.fc2.out_features, device=x.device)

        def work():
            out.copy_(self.fc2(torch.relu(self.fc1(x))))

        threading.Thread(target=work).start()
        return out
