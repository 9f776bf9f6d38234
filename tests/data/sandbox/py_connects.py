# expect: build_error: Connect call failed
# Connects to the test's listener on 127.0.0.1 through asyncio, which the static screen does not flag.
import asyncio

import torch
import torch.nn as nn

PORT = int("__PORT__")


async def send():
    _, writer = await asyncio.open_connection("127.0.0.1", PORT)
    writer.write(b"sent by a candidate")
    await writer.drain()
    writer.close()


asyncio.run(send())


class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
