"""nasir's ResNets compute the reference functions, not only the reference counts.

Two references are transcribed here. ResNet-50 as torchvision's `resnet.py` builds it (He et
al., CVPR 2016, Table 1, "v1.5"): 7x7/2 stem conv (pad 3, no bias), BN, ReLU, 3x3/2 max pool
(pad 1); `Bottleneck` = 1x1, 3x3 carrying the stride, 1x1 to 4x planes, each followed by BN,
ReLU after the first two and after the residual sum; `downsample` = 1x1 conv with the stride +
BN when the shape changes; global average pooling and `fc`. The CIFAR ResNet-20 (§4.2) in the
layout of the widely used PyTorch reference (akamaster/pytorch_resnet_cifar10, `resnet.py`) with
its option-B shortcut (1x1 conv with the stride + BN), which specs/resnet_cifar.arch chooses:
3x3 stem with 16 filters, three stages of n = 3 `BasicBlock`s of 16, 32, 64 filters, global
average pooling and `linear`. nasir's ResNets carry torchvision's module names, so the
ImageNet weights copy by name as they are; the CIFAR reference's `shortcut` and `linear` are
nasir's `downsample` and `fc`; the copy is checked one to one with equal shapes.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import nasir
from nasir.testing.equivalence import copy_renamed, max_abs_diff, randomize_for_comparison


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (groups 1, base width 64, dilation 1). `stride_on_3x3 =
    False` gives the original paper's v1 placement, used only to show the test can fail."""

    expansion = 4
    stride_on_3x3 = True

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        s1, s2 = (1, self.stride) if self.stride_on_3x3 else (self.stride, 1)
        y = F.relu(self.bn1(F.conv2d(x, self.conv1.weight, stride=s1)))
        y = F.relu(self.bn2(F.conv2d(y, self.conv2.weight, stride=s2, padding=1)))
        y = self.bn3(self.conv3(y))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(y + identity)


class TorchvisionResNet50(nn.Module):
    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, blocks in enumerate(layers):
            planes = 64 * 2 ** i
            stage = []
            for j in range(blocks):
                stage.append(Bottleneck(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class CifarBasicBlock(nn.Module):
    """The reference BasicBlock with option B: 3x3 (stride), BN, ReLU, 3x3, BN, + shortcut,
    ReLU."""

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, n: int = 3, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, planes in enumerate((16, 32, 64)):
            stage = []
            for j in range(n):
                stage.append(CifarBasicBlock(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.linear = nn.Linear(64, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.avg_pool2d(x, x.size()[3])
        return self.linear(x.view(x.size(0), -1))


def imagenet_name(official: str) -> str:
    """nasir's resnet50 has torchvision's parameter names."""
    return official


def cifar_name(official: str) -> str:
    """The reference's `shortcut` and `linear` are nasir's (and torchvision's) `downsample`
    and `fc`."""
    official = re.sub(r"\.shortcut\.", ".downsample.", official)
    return re.sub(r"^linear\.", "fc.", official)


def test_resnet50_equals_torchvision_v1_5() -> None:
    torch.manual_seed(0)
    reference = TorchvisionResNet50()
    randomize_for_comparison(reference, torch.randn(2, 3, 64, 64))
    ours = nasir.compile("resnet50").eval()
    copy_renamed(reference, ours, imagenet_name)
    diff, scale = max_abs_diff(ours, reference, torch.randn(1, 3, 224, 224))
    print(f"ResNet-50 at 1x3x224x224: max |diff| {diff:.3g} (logits up to {scale:.3g})")
    assert diff <= 1e-4 * max(1.0, scale)

    # The comparison can fail (on a smaller input, to stay fast): the paper's v1 stride
    # placement, or one nudged weight of the copied module, moves the logits far more.
    x = torch.randn(2, 3, 64, 64)
    small, _ = max_abs_diff(ours, reference, x)
    assert small <= 1e-4 * max(1.0, scale)
    Bottleneck.stride_on_3x3 = False
    try:
        assert max_abs_diff(ours, reference, x)[0] > 100 * max(small, 1e-6)
    finally:
        Bottleneck.stride_on_3x3 = True
    with torch.no_grad():
        ours.get_parameter("layer3.2.conv2.weight")[0, 0, 1, 1] += 1.0
    assert max_abs_diff(ours, reference, x)[0] > 100 * max(small, 1e-6)


def test_cifar_resnet20_equals_the_option_b_reference() -> None:
    torch.manual_seed(1)
    reference = CifarResNet(n=3)
    randomize_for_comparison(reference, torch.randn(4, 3, 32, 32))
    ours = nasir.compile("resnet20").eval()
    copy_renamed(reference, ours, cifar_name)
    x = torch.randn(2, 3, 32, 32)
    diff, scale = max_abs_diff(ours, reference, x)
    print(f"CIFAR ResNet-20 at 2x3x32x32: max |diff| {diff:.3g} (logits up to {scale:.3g})")
    assert diff <= 1e-4 * max(1.0, scale)
    with torch.no_grad():
        ours.get_parameter("layer2.0.downsample.0.weight")[0, 0] += 1.0
    assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
