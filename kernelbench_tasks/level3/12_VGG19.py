"""VGG-19: sixteen 3x3 conv + ReLU layers in five max-pooled blocks, then a three-layer classifier."""

import torch
import torch.nn as nn

# Output channels of each 3x3 conv; "M" is a 2x2 max-pool.
_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


class Model(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        stages = []
        channels = 3
        for item in _CONFIG:
            if item == "M":
                stages.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                stages += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.0),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.0),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.classifier(x)


batch_size = 10
num_classes = 1000

# The classifier expects a 7x7 map, which fixes the 224x224 input; only the batch shrinks.
SMALL = {"batch_size": 1}


def get_inputs():
    return [torch.rand(batch_size, 3, 224, 224)]


def get_init_inputs():
    return [num_classes]
