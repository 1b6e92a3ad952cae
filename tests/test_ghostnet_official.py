"""nasir's GhostNet computes the official function, not only the official counts.

The reference below is a transcription, written here, of GhostNet as published (Han et al.,
"GhostNet: More Features from Cheap Operations", CVPR 2020) and implemented by the official
PyTorch code (huawei-noah/Efficient-AI-Backbones, ghostnet_pytorch/ghostnet.py): `_make_divisible`,
`hard_sigmoid` (relu6(x + 3) / 6), `SqueezeExcite` (reduce/expand convs with bias, ReLU, hard
sigmoid gate, reduced width `_make_divisible(mid * se_ratio, 4)`), `ConvBnAct`, `GhostModule`
(primary conv, cheap depthwise conv, concat cut to `oup`), `GhostBottleneck` (no ReLU after the
strided depthwise conv, depthwise + pointwise shortcut when shapes change), `cfgs`, `conv_stem`,
`conv_head` with bias, functional dropout 0.2 and the classifier. Module names are the official
ones; they are translated to nasir's by the renaming that specs/ghostnet.arch documents, and the
test checks that the translation is one to one with equal shapes before copying.
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

CFGS = [  # k, exp, c, se_ratio, s -- the official `cfgs`, one list per stage
    [[3, 16, 16, 0, 1]],
    [[3, 48, 24, 0, 2]],
    [[3, 72, 24, 0, 1]],
    [[5, 72, 40, 0.25, 2]],
    [[5, 120, 40, 0.25, 1]],
    [[3, 240, 80, 0, 2]],
    [[3, 200, 80, 0, 1], [3, 184, 80, 0, 1], [3, 184, 80, 0, 1], [3, 480, 112, 0.25, 1],
     [3, 672, 112, 0.25, 1]],
    [[5, 672, 160, 0.25, 2]],
    [[5, 960, 160, 0, 1], [5, 960, 160, 0.25, 1], [5, 960, 160, 0, 1], [5, 960, 160, 0.25, 1]],
]


def make_divisible(v: float, divisor: int) -> int:
    """The official `_make_divisible` (from TF-slim mobilenet.py) with min_value = divisor."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class SqueezeExcite(nn.Module):
    gate = "hard_sigmoid"  # the official gate_fn; "sigmoid" only to show the test can fail

    def __init__(self, chs: int, se_ratio: float) -> None:
        super().__init__()
        reduced = make_divisible(chs * se_ratio, 4)
        self.conv_reduce = nn.Conv2d(chs, reduced, 1, bias=True)
        self.conv_expand = nn.Conv2d(reduced, chs, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        s = self.conv_expand(F.relu(self.conv_reduce(F.adaptive_avg_pool2d(x, 1))))
        g = F.relu6(s + 3.0) / 6.0 if self.gate == "hard_sigmoid" else torch.sigmoid(s)
        return x * g


class ConvBnAct(nn.Module):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, 1, k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn1(self.conv(x)))


class GhostModule(nn.Module):
    def __init__(self, inp: int, oup: int, relu: bool, k: int = 1, ratio: int = 2,
                 dw: int = 3) -> None:
        super().__init__()
        self.oup = oup
        init = math.ceil(oup / ratio)
        new = init * (ratio - 1)
        act: list[nn.Module] = [nn.ReLU()] if relu else [nn.Sequential()]
        self.primary_conv = nn.Sequential(nn.Conv2d(inp, init, k, 1, k // 2, bias=False),
                                          nn.BatchNorm2d(init), *act)
        act = [nn.ReLU()] if relu else [nn.Sequential()]
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init, new, dw, 1, dw // 2, groups=init, bias=False),
            nn.BatchNorm2d(new), *act)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.primary_conv(x)
        return torch.cat([x1, self.cheap_operation(x1)], 1)[:, :self.oup]


class GhostBottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, k: int, stride: int,
                 se_ratio: float) -> None:
        super().__init__()
        self.stride = stride
        self.ghost1 = GhostModule(cin, mid, relu=True)
        if stride > 1:
            self.conv_dw = nn.Conv2d(mid, mid, k, stride, (k - 1) // 2, groups=mid, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid)
        self.se = SqueezeExcite(mid, se_ratio) if se_ratio > 0 else None
        self.ghost2 = GhostModule(mid, cout, relu=False)
        if cin == cout and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cin, k, stride, (k - 1) // 2, groups=cin, bias=False),
                nn.BatchNorm2d(cin),
                nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
                nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.ghost1(x)
        if self.stride > 1:
            y = self.bn_dw(self.conv_dw(y))
        if self.se is not None:
            y = self.se(y)
        return self.ghost2(y) + self.shortcut(x)


class OfficialGhostNet(nn.Module):
    def __init__(self, width: float = 1.0, classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = dropout
        cin = make_divisible(16 * width, 4)
        self.conv_stem = nn.Conv2d(3, cin, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        stages: list[nn.Module] = []
        for cfg in CFGS:
            layers = []
            for k, exp, c, se_ratio, s in cfg:
                cout = make_divisible(c * width, 4)
                layers.append(GhostBottleneck(cin, make_divisible(exp * width, 4), cout, k, s,
                                              se_ratio))
                cin = cout
            stages.append(nn.Sequential(*layers))
        last = make_divisible(exp * width, 4)
        stages.append(nn.Sequential(ConvBnAct(cin, last, 1)))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = nn.Conv2d(last, 1280, 1, 1, 0, bias=True)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(F.relu(self.bn1(self.conv_stem(x))))
        x = F.relu(self.conv_head(F.adaptive_avg_pool2d(x, 1)))
        x = F.dropout(x.view(x.size(0), -1), p=self.dropout, training=self.training)
        return self.classifier(x)


RENAMES = (  # official name -> nasir's, as specs/ghostnet.arch documents
    (r"^blocks\.9\.0\.", "blocks.stage9."),
    (r"^blocks\.(\d+)\.(\d+)\.", r"blocks.stage\1.block\2."),
    (r"\.(primary_conv|cheap_operation)\.0\.", r".\1.conv."),
    (r"\.(primary_conv|cheap_operation)\.1\.", r".\1.bn."),
    (r"\.se\.conv_(reduce|expand)\.", r".se.\1."),
    (r"\.shortcut\.0\.", ".shortcut.dw."),
    (r"\.shortcut\.1\.", ".shortcut.dw_bn."),
    (r"\.shortcut\.2\.", ".shortcut.pw."),
    (r"\.shortcut\.3\.", ".shortcut.pw_bn."),
)


def nasir_name(official: str) -> str:
    for pattern, repl in RENAMES:
        official = re.sub(pattern, repl, official)
    return official


@pytest.mark.parametrize(("name", "width", "size"), [
    ("ghostnet", 1.0, 224), ("ghostnet_0_5", 0.5, 128), ("ghostnet_1_3", 1.3, 128)])
def test_ghostnet_equals_the_official_function(name: str, width: float, size: int) -> None:
    """GhostNet 1.0x at 224x224, and the 0.5x and 1.3x widths (other make_divisible
    roundings, SE widths included) on a smaller input to stay fast."""
    torch.manual_seed(0)
    reference = OfficialGhostNet(width)
    randomize_for_comparison(reference, torch.randn(2, 3, 112, 112))
    ours = nasir.compile(name).eval()
    copy_renamed(reference, ours, nasir_name)
    diff, scale = max_abs_diff(ours, reference, torch.randn(2, 3, size, size))
    print(f"GhostNet {width}x at 2x3x{size}x{size}: max |diff| {diff:.3g} "
          f"(logits up to {scale:.3g})")
    assert diff <= 1e-4 * max(1.0, scale)

    # The comparison can fail: the official gate replaced by a sigmoid in the reference, or
    # one weight of the copied module nudged, each moves the logits far beyond the tolerance
    # (checked on a smaller input, to keep the test fast).
    x = torch.randn(1, 3, 112, 112)
    assert max_abs_diff(ours, reference, x)[0] <= 1e-4 * max(1.0, scale)
    for m in reference.modules():
        if isinstance(m, SqueezeExcite):
            m.gate = "sigmoid"
    assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
    for m in reference.modules():
        if isinstance(m, SqueezeExcite):
            m.gate = "hard_sigmoid"
    with torch.no_grad():
        ours.get_parameter("blocks.stage6.block3.ghost1.primary_conv.conv.weight")[0, 0] += 1.0
    assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
