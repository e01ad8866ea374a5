"""Float networks of the built-in tasks: small enough to train on a laptop CPU in seconds.

The digits networks take 1x8x8 images, the MNIST-1D ones 1x40 signals. Batch normalisation
follows every convolution, as in the MobileNets; it stays in float when the network is quantized
(as in HAQ), so the quantized layers are exactly the convolutions and ``nn.Linear`` modules.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class DigitsMobileNet(nn.Module):
    """A MobileNet-V1-style network for 8x8 digits: 10 quantizable layers.

    stem 3x3 conv (1->16), then four depthwise-separable blocks (3x3 depthwise + 1x1 pointwise:
    16->32, 32->64 stride 2, 64->64, 64->128 stride 2), global average pooling and a linear head.
    """

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        blocks: list[nn.Module] = [_conv_bn_relu(1, w, 3)]
        for c_in, c_out, stride in ((w, 2 * w, 1), (2 * w, 4 * w, 2), (4 * w, 4 * w, 1), (4 * w, 8 * w, 2)):
            blocks.append(_conv_bn_relu(c_in, c_in, 3, stride=stride, groups=c_in))  # depthwise
            blocks.append(_conv_bn_relu(c_in, c_out, 1))  # pointwise
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class DigitsCNN(nn.Module):
    """A tiny 4-layer CNN for tests and for exact ground truth by enumeration.

    3x3 conv (1->8), 3x3 conv stride 2 (8->16), 3x3 conv stride 2 (16->32), linear (128->10).
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_relu(1, 8, 3),
            _conv_bn_relu(8, 16, 3, stride=2),
            _conv_bn_relu(16, 32, 3, stride=2),
        )
        self.classifier = nn.Linear(32 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# --------------------------------------------------------------------------------------------------
# MNIST-1D: 1 channel x 40 samples


def _conv1d_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class Mnist1dCNN(nn.Module):
    """A plain 1-D CNN for MNIST-1D (length 40): 8 quantizable layers.

    With ``width`` w (16): conv k5 (1->w), then k3 convs w->w, w->2w stride 2, 2w->2w, 2w->2w
    stride 2, 2w->4w, 4w->4w stride 2 (length 40 -> 20 -> 10 -> 5), global average pooling and a
    linear head.
    """

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv1d_bn_relu(1, w, 5),
            _conv1d_bn_relu(w, w, 3),
            _conv1d_bn_relu(w, 2 * w, 3, stride=2),
            _conv1d_bn_relu(2 * w, 2 * w, 3),
            _conv1d_bn_relu(2 * w, 2 * w, 3, stride=2),
            _conv1d_bn_relu(2 * w, 4 * w, 3),
            _conv1d_bn_relu(4 * w, 4 * w, 3, stride=2),
        )
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class Mnist1dSmallCNN(nn.Module):
    """A plain 1-D CNN for MNIST-1D with 5 quantizable layers, small enough to enumerate.

    With ``width`` w (16): conv k5 (1->w), then k3 convs w->2w stride 2, 2w->2w, 2w->4w stride 2
    (length 40 -> 20 -> 10), global average pooling and a linear head.
    """

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv1d_bn_relu(1, w, 5),
            _conv1d_bn_relu(w, 2 * w, 3, stride=2),
            _conv1d_bn_relu(2 * w, 2 * w, 3),
            _conv1d_bn_relu(2 * w, 4 * w, 3, stride=2),
        )
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class Mnist1dMobileNet(nn.Module):
    """A MobileNet-V1-style 1-D network for MNIST-1D: 12 quantizable layers.

    With ``width`` w (16): stem conv k5 (1->w), then five depthwise-separable blocks (k5 depthwise
    + pointwise: w->w, w->2w stride 2, 2w->2w, 2w->4w stride 2, 4w->4w), global average pooling and
    a linear head.
    """

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        blocks: list[nn.Module] = [_conv1d_bn_relu(1, w, 5)]
        for c_in, c_out, stride in ((w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 4 * w, 2), (4 * w, 4 * w, 1)):
            blocks.append(_conv1d_bn_relu(c_in, c_in, 5, stride=stride, groups=c_in))  # depthwise
            blocks.append(_conv1d_bn_relu(c_in, c_out, 1))  # pointwise
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
