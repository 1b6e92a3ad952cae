"""Hand-written reference networks for the speed rows of bench/perf_table.py.

They are written as the official code runs them, in-place operations included, because
speed is what they are compared on: torchvision's ResNet-50 (`torchvision/models/resnet.py`:
`nn.ReLU(inplace=True)`, `out += identity`) and the official GhostNet
(`huawei-noah/Efficient-AI-Backbones`, `ghostnet_pytorch/ghostnet.py`: ReLU(inplace=True),
`x += self.shortcut(residual)`). Parameter names follow those repositories, so the
renaming functions of the fidelity tests map them onto nasir's specs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor, nn

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import test_ghostnet_official as ghost  # noqa: E402  (the fidelity test's transcription)
import test_resnet_official as resnet  # noqa: E402


class Bottleneck(nn.Module):
    """torchvision's Bottleneck v1.5 (stride on the 3x3), as it runs."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    """torchvision's resnet50() forward: stem, four stages, pooling, fc."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, blocks in enumerate(layers):
            planes = 64 * 2 ** i
            stage = []
            for j in range(blocks):
                stage.append(Bottleneck(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class _GhostBottleneck(ghost.GhostBottleneck):
    def forward(self, x: Tensor) -> Tensor:
        residual = x
        x = self.ghost1(x)
        if self.stride > 1:
            x = self.bn_dw(self.conv_dw(x))
        if self.se is not None:
            x = self.se(x)
        x = self.ghost2(x)
        x += self.shortcut(residual)
        return x


class GhostNet(ghost.OfficialGhostNet):
    """The official GhostNet as it runs: in-place ReLUs and shortcut accumulation."""

    def __init__(self, width: float = 1.0) -> None:
        original = ghost.GhostBottleneck
        ghost.GhostBottleneck = _GhostBottleneck  # the constructor builds these blocks
        try:
            super().__init__(width)
        finally:
            ghost.GhostBottleneck = original
        for module in self.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = True
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.act(self.bn1(self.conv_stem(x))))
        x = self.act(self.conv_head(nn.functional.adaptive_avg_pool2d(x, 1)))
        x = nn.functional.dropout(x.view(x.size(0), -1), p=self.dropout, training=self.training)
        return self.classifier(x)


# name: (reference constructor, nasir spec, official-to-nasir parameter renaming)
MODELS = {
    "resnet50": (ResNet50, "resnet50", resnet.imagenet_name),
    "ghostnet": (GhostNet, "ghostnet", ghost.nasir_name),
}
