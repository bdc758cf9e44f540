"""The two landmark networks, in plain torch (torchvision does not import beside torch 2.13 here).

Both map a (N, 1, S, S) grey crop normalized to [-1, 1] to raw head outputs; `decode` turns
those into (N, 68, 2) crop pixel coordinates inside the exported graph, so the runtime only
ever sees points.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from rtalign.landmarks import FLIP

N_POINTS = 68


def conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convs and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + self.short(x))


class ResNetPIP(nn.Module):
    """The study's ResNet (7x7/2 stem, max-pool, stages of 3/3/3/4 blocks by default; the shipped file has
    2/2/3/2, see train.shrink) with a pixel-in-pixel head.

    The head classifies, per landmark, which cell of a grid at stride 16 holds it and regresses
    the offset inside that cell plus the offsets of its `n_nb` nearest neighbours (PIPNet idea);
    the stride-32 stage is upsampled and concatenated so the head sees global context.
    """

    def __init__(self, input_size: int, width: int, neighbours: np.ndarray, blocks=(3, 3, 3, 4)):
        super().__init__()
        self.input_size, self.stride = input_size, 16
        self.grid = input_size // self.stride
        self.register_buffer("neighbours", torch.as_tensor(neighbours, dtype=torch.long))
        n_nb = neighbours.shape[1]
        self.stem = nn.Sequential(conv_bn(1, width, 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2 ** i
            stages.append(nn.Sequential(*[BasicBlock(cin if j == 0 else cout, cout, 1 if (i == 0 or j) else 2)
                                          for j in range(n)]))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        feat = width * 4 + width * 8
        self.cls = nn.Conv2d(feat, N_POINTS, 1)
        self.off = nn.Conv2d(feat, N_POINTS * 2, 1)
        self.nb = nn.Conv2d(feat, N_POINTS * n_nb * 2, 1)
        # averaging matrix: point j = mean of its own estimate and every neighbour estimate of j
        votes = np.zeros((N_POINTS, N_POINTS * n_nb), np.float32)
        for k in range(N_POINTS):
            for m, j in enumerate(neighbours[k]):
                votes[j, k * n_nb + m] = 1.0
        count = 1.0 + votes.sum(1, keepdims=True)
        self.register_buffer("vote_nb", torch.from_numpy(votes / count))
        self.register_buffer("vote_self", torch.from_numpy(1.0 / count[:, 0]))

    def features(self, x):
        """The head's input: the stride-16 stage beside the upsampled stride-32 stage, (N, C, grid, grid)."""
        c3 = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return torch.cat([c3, F.interpolate(self.layer4(c3), scale_factor=2.0, mode="nearest")], 1)

    def forward(self, x):
        """Every head at every cell (what training needs): cell scores, offsets, neighbour offsets."""
        f = self.features(x)
        n = f.shape[0]
        g2 = self.grid * self.grid
        return (self.cls(f).reshape(n, N_POINTS, g2),
                self.off(f).reshape(n, N_POINTS, 2, g2),
                self.nb(f).reshape(n, N_POINTS, -1, 2, g2))

    def _vote(self, idx, own, nbv):
        """Points from each landmark's peak cell (N, 68), its own offset there (N, 68, 2) and the offsets
        of its neighbours it predicts there (N, 68, K, 2): each point is the mean of its own estimate and
        of every neighbour's estimate of it. Crop pixel centres."""
        n = idx.shape[0]
        cell = torch.stack([idx % self.grid, idx // self.grid], -1).to(own.dtype) + 0.5
        nbv = (nbv + cell[:, :, None, :]).reshape(n, -1, 2)
        pts = (own + cell) * self.vote_self[None, :, None] + torch.einsum("jk,nkc->njc", self.vote_nb, nbv)
        return pts * self.stride - 0.5

    def decode(self, cls, off, nb):
        """Raw head outputs → (N, 68, 2) crop pixel centres."""
        n = cls.shape[0]
        idx = cls.argmax(-1)                                             # (N, 68)
        own = torch.gather(off, 3, idx[:, :, None, None].expand(n, N_POINTS, 2, 1))[..., 0]
        nbv = torch.gather(nb, 4, idx[:, :, None, None, None].expand(n, N_POINTS, nb.shape[2], 2, 1))[..., 0]
        return self._vote(idx, own, nbv)

    def presence(self, cls, off=None, nb=None):
        """(N,) face-presence score: mean over landmarks of the peak cell probability.

        On a face every landmark's cell is unambiguous (near 1); on background or a badly
        placed box the distributions are diffuse, which is how a tracker notices a lost face.
        """
        return cls.softmax(-1).amax(-1).mean(-1)

    def predict(self, x):
        """(points, score) as the exported graph computes them."""
        return self.points_from_features(self.features(x))

    def points_from_features(self, f):
        """`decode(*heads)` and `presence` from the features, with the offset heads evaluated only at each
        landmark's peak cell: their 1×1 convolutions become one small matrix product per landmark on the
        feature vector gathered there. Same numbers; the neighbour-offset convolution over every cell
        (1,360 channels × 64 cells) was 18 % of the whole network's time at 128 px."""
        n, c = f.shape[0], self.cls.in_channels      # a constant c lets the export fold the weights below
        cls = self.cls(f).reshape(n, N_POINTS, -1)
        idx = cls.argmax(-1)
        at_peak = torch.gather(f.reshape(n, c, -1), 2, idx[:, None, :].expand(n, c, N_POINTS))   # (N, C, 68)
        weight = torch.cat([self.off.weight.reshape(N_POINTS, 2, c), self.nb.weight.reshape(N_POINTS, -1, c)], 1)
        bias = torch.cat([self.off.bias.reshape(N_POINTS, 2), self.nb.bias.reshape(N_POINTS, -1)], 1)
        out = torch.matmul(at_peak.permute(2, 0, 1), weight.transpose(1, 2)).permute(1, 0, 2) + bias  # (N, 68, 2+2K)
        return self._vote(idx, out[..., :2], out[..., 2:].reshape(n, N_POINTS, -1, 2)), self.presence(cls)


class SmallCNN(nn.Module):
    """The study's small CNN (3 conv + 2 max-pool + dense), with batch norm and a hidden dense layer.

    The dense output classifies each coordinate of each landmark over one bin per input pixel
    (SimCC-style: x and y as two 1-D classifications, decoded by soft-argmax to sub-pixel
    precision), which trains far better than regressing 136 numbers directly with a net this small.
    """

    def __init__(self, input_size: int, width: int = 32, hidden: int = 256):
        super().__init__()
        self.input_size = self.bins = input_size
        self.features = nn.Sequential(
            conv_bn(1, width, 5, 2), nn.MaxPool2d(2),
            conv_bn(width, width * 2, 3), nn.MaxPool2d(2),
            conv_bn(width * 2, width * 4, 3, 2))
        side = input_size // 16
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(width * 4 * side * side, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, N_POINTS * 2 * self.bins))
        self.register_buffer("centres", torch.arange(self.bins, dtype=torch.float32) + 0.5)

    def forward(self, x):
        return (self.head(self.features(x)).reshape(-1, N_POINTS, 2, self.bins),)

    def predict(self, x):
        """(points, score) as the exported graph computes them."""
        out = self(x)
        return self.decode(*out), self.presence(*out)

    def decode(self, logits):
        """Soft-argmax over the bins → (N, 68, 2) crop pixel centres."""
        return (logits.softmax(-1) * self.centres).sum(-1) * (self.input_size / self.bins) - 0.5

    def presence(self, logits):
        """(N,) how peaked the coordinate distributions are: the probability within ±1 bin of each
        peak, averaged over landmarks and axes. High on faces, low on background."""
        p = logits.softmax(-1)
        window = F.avg_pool1d(p.reshape(-1, 1, self.bins), 3, 1, 1) * 3
        return window.reshape(p.shape).amax(-1).mean((-1, -2))


class Exported(nn.Module):
    """The network's `predict` (points and presence score) as one graph: what goes into the ONNX file.

    flip: each crop is also run mirrored and the two estimates averaged (the mirrored one mapped back
    with the landmark permutation), inside the graph, so the runtime is unchanged and a frame's faces
    still go through one call; about 0.1 NME for twice the backbone time (../shared/NOTES-training.md).
    """
    outputs = ["points", "score"]

    def __init__(self, net: nn.Module, flip: bool = False):
        super().__init__()
        self.net, self.flip = net, flip
        self.register_buffer("permutation", torch.as_tensor(FLIP, dtype=torch.long))

    def forward(self, x):
        if not self.flip:
            return self.net.predict(x)
        n = x.shape[0]
        pts, score = self.net.predict(torch.cat([x, x.flip(-1)]))
        mirrored = pts[n:, self.permutation]
        mirrored = torch.stack([(x.shape[-1] - 1) - mirrored[..., 0], mirrored[..., 1]], -1)
        return (pts[:n] + mirrored) / 2, (score[:n] + score[n:]) / 2
