"""nasir's Wide ResNets compute the authors' function, not only their counts.

The reference below is a transcription, written here, of WRN-d-k (Zagoruyko & Komodakis,
"Wide Residual Networks", BMVC 2016) as the authors' code builds it
(szagoruyko/wide-residual-networks, models/wide-resnet.lua, and its PyTorch port
pytorch/resnet.py, whose parameter names the reference uses): a bias-free 3x3 conv `conv0`
(16 filters, no BN after it); three groups of n = (d-4)/6 pre-activation blocks of widths
16k, 32k, 64k, stride 2 first in groups 1 and 2; a block is o1 = ReLU(BN `bn0`(x)),
conv3x3 `conv0` (stride), ReLU(BN `bn1`), conv3x3 `conv1`, plus the shortcut: x itself when
the width is unchanged, otherwise a bias-free 1x1 conv `convdim` (stride) applied to o1, the
BN-ReLU shared by both branches; then BN `bn`, ReLU, 8x8 average pooling and linear `fc` with
bias. Convolutions have no bias (`utils.DisableBias`). The names are translated to nasir's
(`groupG.blockI` -> `stage{G+1}.block{I+1}`, `bn0/conv0/bn1/conv1/convdim` ->
`bn1/conv1/bn2/conv2/shortcut_conv`, `conv0` -> `conv1`, `bn` -> `bn_final`, `fc` ->
`classifier.fc`) and the translation is checked one to one with equal shapes.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import nasir
from nasir.testing.equivalence import copy_renamed, max_abs_diff, randomize_for_comparison


class Block(nn.Module):
    """`wide_basic`. `preactivated_shortcut = False` feeds the 1x1 shortcut the raw input
    instead, only to show the test can fail."""

    preactivated_shortcut = True

    def __init__(self, ni: int, no: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.bn0 = nn.BatchNorm2d(ni)
        self.conv0 = nn.Conv2d(ni, no, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(no)
        self.conv1 = nn.Conv2d(no, no, 3, 1, 1, bias=False)
        self.convdim = nn.Conv2d(ni, no, 1, stride, bias=False) if ni != no else None

    def forward(self, x: Tensor) -> Tensor:
        o1 = F.relu(self.bn0(x))
        z = self.conv1(F.relu(self.bn1(self.conv0(o1))))
        if self.convdim is None:
            return z + x
        return z + self.convdim(o1 if self.preactivated_shortcut else x)


class AuthorsWRN(nn.Module):
    def __init__(self, depth: int, width: int, classes: int = 10) -> None:
        super().__init__()
        n = (depth - 4) // 6
        self.conv0 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        ni = 16
        for g, no in enumerate((16 * width, 32 * width, 64 * width)):
            group = nn.Module()
            for i in range(n):
                group.add_module(f"block{i}", Block(ni, no, 2 if g > 0 and i == 0 else 1))
                ni = no
            self.add_module(f"group{g}", group)
        self.bn = nn.BatchNorm2d(ni)
        self.fc = nn.Linear(ni, classes)

    def forward(self, x: Tensor) -> Tensor:
        o = self.conv0(x)
        for g in range(3):
            for block in getattr(self, f"group{g}").children():
                o = block(o)
        o = F.avg_pool2d(F.relu(self.bn(o)), 8, 1, 0)
        return self.fc(o.view(o.size(0), -1))


BLOCK_LEAVES = {"bn0": "bn1", "conv0": "conv1", "bn1": "bn2", "conv1": "conv2",
                "convdim": "shortcut_conv"}
TOP = {"conv0": "conv1", "bn": "bn_final", "fc": "classifier.fc"}


def nasir_name(official: str) -> str:
    m = re.fullmatch(r"group(\d)\.block(\d+)\.(\w+)\.(\w+)", official)
    if m:
        return f"stage{int(m[1]) + 1}.block{int(m[2]) + 1}.{BLOCK_LEAVES[m[3]]}.{m[4]}"
    module, leaf = official.split(".")
    return f"{TOP[module]}.{leaf}"


@pytest.mark.parametrize(("depth", "width"), [(16, 4), (10, 1)])
def test_wrn_equals_the_authors_function(depth: int, width: int) -> None:
    """WRN-16-4 (a 1x1 shortcut already in the first stage) and WRN-10-1 (an identity one)."""
    torch.manual_seed(depth + width)
    reference = AuthorsWRN(depth, width)
    randomize_for_comparison(reference, torch.randn(4, 3, 32, 32))
    ours = nasir.compile("wrn", depth=depth, widen=width).eval()
    copy_renamed(reference, ours, nasir_name)
    x = torch.randn(2, 3, 32, 32)
    diff, scale = max_abs_diff(ours, reference, x)
    print(f"WRN-{depth}-{width} at 2x3x32x32: max |diff| {diff:.3g} (logits up to {scale:.3g})")
    assert diff <= 1e-4 * max(1.0, scale)

    # The comparison can fail: the 1x1 shortcut fed the raw input instead of the shared
    # pre-activation, or one nudged weight, moves the logits far beyond the tolerance.
    Block.preactivated_shortcut = False
    try:
        assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
    finally:
        Block.preactivated_shortcut = True
    with torch.no_grad():
        ours.get_parameter("stage2.block1.conv2.weight")[0, 0, 1, 1] += 1.0
    assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
