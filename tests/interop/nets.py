"""Small networks written with plain ``torch.nn`` for the whole-network tests.

Each factory takes ``width`` and ``num_classes`` and returns the network in eval
mode with random weights (PyTorch's default initialisation, drawn from the
global generator: seed it before calling). ``resnet_style`` is also the network
of the 224×224 check::

    PYTHONPATH=tests/interop attn-expressivity verify-model nets:resnet_style \\
        --input-size 3x224x224 --dtype float64 --alpha 40
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """ResNet's basic block; a 1×1/2 convolution and BatchNorm downsample when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """A 7×7/2 stem with BatchNorm, ReLU and 3×3/2 max pooling, residual stages, a classifier.

    ``blocks`` basic blocks per stage; stage ``i`` has ``width · 2^i`` channels and
    every stage after the first starts with a stride of 2 (a 1×1/2 downsample).
    ``blocks=(2, 2, 2, 2), width=64`` is ResNet-18 (He et al., 2016), with
    torchvision's layer names and, with ``kaiming=True``, its initialisation.
    """

    def __init__(self, blocks=(1, 1), width: int = 8, num_classes: int = 10,
                 kaiming: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c = width
        for i, n in enumerate(blocks):
            out = width * 2**i
            stage = [BasicBlock(c, out, stride=1 if i == 0 else 2)]
            stage += [BasicBlock(out, out) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            c = out
        self.stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        if kaiming:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: a channel gate from global pooling, two 1×1 convolutions and Hardsigmoid."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV3's block: 1×1 expansion, 3×3 depthwise, squeeze-excitation, 1×1 projection, residual."""

    def __init__(self, channels: int, expanded: int) -> None:
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(channels, expanded, 1, bias=False),
                                    nn.BatchNorm2d(expanded), nn.Hardswish())
        self.depthwise = nn.Sequential(nn.Conv2d(expanded, expanded, 3, padding=1, groups=expanded,
                                                 bias=False),
                                       nn.BatchNorm2d(expanded), nn.Hardswish())
        self.se = SqueezeExcite(expanded, max(1, expanded // 4))
        self.project = nn.Sequential(nn.Conv2d(expanded, channels, 1, bias=False),
                                     nn.BatchNorm2d(channels))

    def forward(self, x):
        return x + self.project(self.se(self.depthwise(self.expand(x))))


class MobileNetStyle(nn.Module):
    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.Hardswish())
        self.block = InvertedResidual(width, 2 * width)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 16),
                                  nn.GELU(), nn.Dropout(0.2), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


class DilatedStyle(nn.Module):
    """Dilated 3×3 convolutions (DeepLab's atrous blocks), reflect padding, SiLU, a strided exit."""

    def __init__(self, width: int = 6, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=2, dilation=2)
        self.act = nn.SiLU()
        self.conv2 = nn.Conv2d(width, width, 3, padding="same", dilation=3, padding_mode="reflect")
        self.bn = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width, (3, 2), stride=2, dilation=(2, 1), padding=(2, 1))
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.act(self.conv1(x))
        x = self.bn(self.conv2(x)) + x
        x = self.pool(torch.relu(self.conv3(x)))
        return self.fc(x.mean(dim=(2, 3)))


class Conv1dNet(nn.Module):
    def __init__(self, width: int = 6, num_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(2, width, 5, stride=2, padding=2), nn.BatchNorm1d(width), nn.GELU(),
            nn.Conv1d(width, width, 3, dilation=2, padding=2, groups=2, padding_mode="circular"),
            nn.Tanh(), nn.MaxPool1d(2), nn.Conv1d(width, width, 4, padding="same"), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class Conv3dNet(nn.Module):
    def __init__(self, width: int = 4, num_classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(1, width, 3, stride=(1, 2, 2), padding=1)
        self.bn = nn.BatchNorm3d(width)
        self.conv2 = nn.Conv3d(width, width, (2, 3, 3), padding=(1, 1, 1), groups=2,
                               padding_mode="replicate")
        self.pool = nn.AvgPool3d(2)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv1(x)))
        x = torch.sigmoid(self.conv2(x))[:, :, 1:] * x
        return self.fc(torch.flatten(self.pool(x).mean((2, 3, 4), keepdim=True), 1))


def resnet_style(width: int = 8, num_classes: int = 10) -> nn.Module:
    """The ResNet-style test network: one block per stage, two stages."""
    return ResNet((1, 1), width, num_classes).eval()


def resnet18(num_classes: int = 1000) -> nn.Module:
    """ResNet-18 with torchvision's architecture and initialisation (the benchmarks' network)."""
    return ResNet((2, 2, 2, 2), 64, num_classes, kaiming=True).eval()


def mobilenet_style(width: int = 8, num_classes: int = 10) -> nn.Module:
    return MobileNetStyle(width, num_classes).eval()


def dilated_style(width: int = 6, num_classes: int = 10) -> nn.Module:
    return DilatedStyle(width, num_classes).eval()


def conv1d_net(width: int = 6, num_classes: int = 5) -> nn.Module:
    return Conv1dNet(width, num_classes).eval()


def conv3d_net(width: int = 4, num_classes: int = 4) -> nn.Module:
    return Conv3dNet(width, num_classes).eval()


#: (factory, input shape without the batch axis) for each test network.
NETWORKS = {
    "resnet": (resnet_style, (3, 32, 32)),
    "mobilenet": (mobilenet_style, (3, 16, 16)),
    "dilated": (dilated_style, (3, 14, 13)),
    "conv1d": (conv1d_net, (2, 23)),
    "conv3d": (conv3d_net, (1, 5, 7, 6)),
}


def randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters (eval mode)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model
