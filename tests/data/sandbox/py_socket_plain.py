# expect: rejected: static screen: line 4: imports socket
# Connects to the test's listener with the socket module: the static screen stops it
# before anything runs.
import socket

import torch
import torch.nn as nn

PORT = int("__PORT__")

socket.create_connection(("127.0.0.1", PORT)).sendall(b"sent by a candidate")


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
