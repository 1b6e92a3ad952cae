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
import torch.nn.functional as F
from torch import Tensor, nn

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import test_ghostnet_official as ghost  # noqa: E402  (the fidelity test's transcription)
import test_resnet_official as resnet  # noqa: E402


class _Bottleneck(resnet.Bottleneck):
    """torchvision's Bottleneck v1.5 as it runs: in-place ReLUs, `out += identity`."""

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(F.conv2d(out, self.conv2.weight, stride=self.stride, padding=1))
        out = self.bn3(self.conv3(F.relu(out, inplace=True)))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return F.relu(out, inplace=True)


class ResNet50(resnet.TorchvisionResNet50):
    """torchvision's resnet50() as it runs (the fidelity test's transcription, in place)."""

    def __init__(self) -> None:
        original = resnet.Bottleneck
        resnet.Bottleneck = _Bottleneck  # the constructor builds these blocks
        try:
            super().__init__()
        finally:
            resnet.Bottleneck = original

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x)), inplace=True), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


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
        x = self.act(self.conv_head(F.adaptive_avg_pool2d(x, 1)))
        x = F.dropout(x.view(x.size(0), -1), p=self.dropout, training=self.training)
        return self.classifier(x)


# name: (reference constructor, nasir spec, official-to-nasir parameter renaming)
MODELS = {
    "resnet50": (ResNet50, "resnet50", resnet.imagenet_name),
    "ghostnet": (GhostNet, "ghostnet", ghost.nasir_name),
}
