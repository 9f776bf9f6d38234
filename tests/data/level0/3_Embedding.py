"""Token ids in [0, vocab): integer inputs keep their range in every input set."""

import torch
import torch.nn as nn

batch_size = 2
seq_len = 6
vocab = 50
dim = 8


class Model(nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)

    def forward(self, ids, scale):
        return self.embed(ids) * scale


def get_inputs():
    return [torch.randint(0, vocab, (batch_size, seq_len)), torch.rand(1) + 0.5]


def get_init_inputs():
    return [vocab, dim]
