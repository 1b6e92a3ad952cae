"""nasir's SplitNet WRNs compute the official function, not only the official counts.

The reference below is a transcription, written here, of Divide-and-Co-training's CIFAR wide
ResNet at test time (Zhao et al., arXiv 2011.14660; FreeformRobotics/Divide-and-Co-training,
model/resnet.py and model/splitnet.py): `SplitNet.models` holds S members; each is the repo's
torchvision-style `ResNet` for CIFAR with `BasicBlock`s: `layer0` = 3x3 conv (16 filters, no
bias) + BN + ReLU; `layer1..3` of n = (depth-4)/6 blocks with planes 16k', 32k', 64k' where
k' = int(max(k / sqrt(S) + 0.4, 1.0)), strides 1, 2, 2; a block is conv3x3 (stride) + BN +
ReLU, conv3x3 + BN, plus the shortcut, ReLU; the shortcut is `downsample` = 1x1 conv + BN when
only the width changes, and AvgPool2d(2, stride 2, ceil_mode, count_include_pad=False) + 1x1
conv + BN (ResNet-D) when strided; adaptive average pooling, flatten, `fc`. In 'val'/'test'
mode every member reads the same input and `_get_ensemble_output` averages the raw logits.
The official names (`models.I.layer0.0`, `models.I.layerN.J.downsample.K`, ...) are translated
to nasir's (`netI.conv`, `netI.layerN.blockJ.downsample.conv`, ...), and the translation is
checked one to one with equal shapes. The official code names only WRN-16/28/40/52 members;
the test builds the same layout at depth 16 and 10 to stay fast.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import nasir
from nasir.testing.equivalence import copy_renamed, max_abs_diff, randomize_for_comparison


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            conv_bn = [nn.Conv2d(inplanes, planes, 1, 1, bias=False), nn.BatchNorm2d(planes)]
            pool = [nn.AvgPool2d(2, stride, ceil_mode=True, padding=0,
                                 count_include_pad=False)] if stride != 1 else []
            self.downsample = nn.Sequential(*pool, *conv_bn)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class CifarWideMember(nn.Module):
    def __init__(self, depth: int, widen: int, split: int, classes: int) -> None:
        super().__init__()
        n = (depth - 4) // 6
        self.layer0 = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                    nn.ReLU())
        planes = 16 * int(max(widen / (split ** 0.5) + 0.4, 1.0))
        inplanes = 16
        for i, stride in enumerate((1, 2, 2)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(inplanes, planes * 2 ** i, stride if j == 0 else 1))
                inplanes = planes * 2 ** i
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.layer0(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


class OfficialSplitNet(nn.Module):
    """`SplitNet.forward` in 'test' mode: the ensemble output. `max_ensemble = True` (the
    repo's is_max_ensemble option) only shows the test can fail."""

    max_ensemble = False

    def __init__(self, depth: int, widen: int, split: int, classes: int) -> None:
        super().__init__()
        self.models = nn.ModuleList(CifarWideMember(depth, widen, split, classes)
                                    for _ in range(split))

    def forward(self, x: Tensor) -> Tensor:
        outputs = torch.stack([m(x) for m in self.models], dim=0)
        return outputs.max(dim=0).values if self.max_ensemble else outputs.mean(dim=0)


def nasir_name(official: str, reference: OfficialSplitNet) -> str:
    """Translate an official state-dict key to nasir's."""
    m = re.fullmatch(r"models\.(\d+)\.(.*)", official)
    assert m, official
    member, rest = m[1], m[2]
    rest = re.sub(r"^layer0\.0\.", "conv.", rest)
    rest = re.sub(r"^layer0\.1\.", "bn.", rest)
    d = re.fullmatch(r"(layer\d)\.(\d+)\.downsample\.(\d)\.(\w+)", rest)
    if d:
        block = getattr(reference.models[int(member)], d[1])[int(d[2])]
        names = [type(c).__name__ for c in block.downsample]
        leaf = {"AvgPool2d": "pool", "Conv2d": "conv", "BatchNorm2d": "bn"}[names[int(d[3])]]
        return f"net{member}.{d[1]}.block{d[2]}.downsample.{leaf}.{d[4]}"
    rest = re.sub(r"^(layer\d)\.(\d+)\.", r"\1.block\2.", rest)
    return f"net{member}.{rest}"


@pytest.mark.parametrize(("depth", "widen", "split"), [(16, 2, 2), (10, 4, 4)])
def test_splitnet_wrn_equals_the_official_ensemble(depth: int, widen: int, split: int) -> None:
    """WRN-16-2 in 2 members of k' = 1 (two blocks a stage), and WRN-10-4 in 4 members of
    k' = 2 (a width change at stride 1 in the first stage)."""
    torch.manual_seed(depth + split)
    config = dict(depth=depth, widen=widen, split=split, classes=10)
    reference = OfficialSplitNet(**config)
    randomize_for_comparison(reference, torch.randn(2, 3, 32, 32))
    ours = nasir.compile("splitnet_wrn", **config).eval()
    copy_renamed(reference, ours, lambda key: nasir_name(key, reference))
    x = torch.randn(2, 3, 32, 32)
    diff, scale = max_abs_diff(ours, reference, x)
    print(f"SplitNet WRN-{depth}-{widen}, S={split}, at 2x3x32x32: max |diff| {diff:.3g} "
          f"(logits up to {scale:.3g})")
    assert diff <= 1e-4 * max(1.0, scale)

    # The comparison can fail: the max ensemble instead of the mean, or one nudged weight
    # in the last member, moves the output far beyond the tolerance (on one image).
    x = x[:1]
    OfficialSplitNet.max_ensemble = True
    try:
        assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
    finally:
        OfficialSplitNet.max_ensemble = False
    with torch.no_grad():
        ours.get_parameter(f"net{split - 1}.layer2.block0.downsample.conv.weight")[0, 0] += 1.0
    assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)


def test_member_width_is_the_official_division_of_wrn28_10() -> None:
    """k' = int(max(10 / sqrt(S) + 0.4, 1.0)) = 10, 7, 5 for S = 1, 2, 4, on the widths of the
    compiled networks' first stage."""
    for split, k in ((1, 10), (2, 7), (4, 5)):
        assert int(max(10 / math.sqrt(split) + 0.4, 1.0)) == k
        ours = nasir.compile(f"splitnet_wrn28_10_c100_s{split}")
        convs = [name for name, _ in ours.named_parameters()
                 if re.fullmatch(r"net\d+\.layer1\.block0\.conv1\.weight", name)]
        assert len(convs) == split
        assert ours.get_parameter(convs[0]).shape[0] == 16 * k
