"""NetVLAD pooling (no ghost clusters, G = 0): features (B, N, D) are soft-assigned to K + G clusters
(matmul, BatchNorm1d, softmax), the G ghost clusters are dropped, residuals to the
K learned centres are summed per cluster, intra-normalised over D, flattened to
(B, D*K) and L2-normalised."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, cluster_size, feature_size, ghost_clusters):
        super().__init__()
        self.feature_size = feature_size
        self.cluster_size = cluster_size
        self.ghost_clusters = ghost_clusters
        scale = 1 / math.sqrt(feature_size)
        k_all = cluster_size + ghost_clusters
        self.clusters = nn.Parameter(scale * torch.randn(feature_size, k_all))  # assignment weights
        self.batch_norm = nn.BatchNorm1d(k_all)
        self.clusters2 = nn.Parameter(scale * torch.randn(1, feature_size, cluster_size))  # centres
        self.out_dim = cluster_size * feature_size

    def forward(self, x, mask=None):
        n = x.shape[1]
        D, K = self.feature_size, self.cluster_size
        x = x.view(-1, D)  # (B*N, D)
        assign = F.softmax(self.batch_norm(torch.matmul(x, self.clusters)), dim=1)
        assign = assign[:, :K].view(-1, n, K)  # (B, N, K), ghosts removed
        a = assign.sum(dim=1, keepdim=True) * self.clusters2  # (B, D, K)
        vlad = torch.matmul(assign.transpose(1, 2), x.view(-1, n, D))  # (B, K, D)
        vlad = F.normalize(vlad.transpose(1, 2) - a)  # intra-normalisation over D
        return F.normalize(vlad.reshape(-1, K * D))


batch_size = 2048
num_features = 100
num_clusters = 32
feature_size = 512
ghost_clusters = 0

SMALL = {"batch_size": 2}


def get_inputs():
    return [torch.rand(batch_size, num_features, feature_size)]


def get_init_inputs():
    return [num_clusters, feature_size, ghost_clusters]
