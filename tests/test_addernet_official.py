"""nasir's AdderNet ResNet-20 computes the official function, not only the official counts.

The reference below is a transcription, written here, of AdderNet (Chen et al., "AdderNet: Do
We Really Need Multiplications in Deep Learning?", CVPR 2020) as the official code builds it
(huawei-noah/AdderNet, `adder.py` and `resnet20.py`): `adder2d` computes -sum |X - W| over
(Cin, k, k) from the zero-padded input unfolded with the batch folded into the channels, its
weight is the parameter `adder`; `BasicBlock` = adder 3x3 (stride), BN, ReLU, adder 3x3, BN,
+ shortcut, ReLU, with an adder 1x1 (stride, no padding) + BN `downsample` when the shape
changes; the first conv is a multiplicative 3x3 (no bias) + BN + ReLU; the head is
AvgPool2d(8, stride 1), a multiplicative 1x1 conv `fc` without bias, BN `bn2`, and a view.
Module names are the official ones except the adder layers' weight (`convK.adder` ->
`convK.weight`, `downsample.0.adder` -> `downsample.0.weight`); the copy is checked one to
one with equal shapes.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import nasir
from nasir.testing.equivalence import copy_renamed, max_abs_diff, randomize_for_comparison


def official_adder2d(x: Tensor, w: Tensor, stride: int, padding: int) -> Tensor:
    """`adder2d_function` + `adder.forward`: unfold, then -sum |W_col - X_col| over Cin*k*k."""
    n_filters, _, k, _ = w.shape
    n_x, _, h_x, w_x = x.shape
    h_out = (h_x - k + 2 * padding) // stride + 1
    w_out = (w_x - k + 2 * padding) // stride + 1
    x_col = F.unfold(x.reshape(1, -1, h_x, w_x), k, padding=padding, stride=stride)
    x_col = x_col.view(n_x, -1, h_out * w_out)
    x_col = x_col.permute(1, 2, 0).contiguous().view(x_col.size(1), -1)
    w_col = w.view(n_filters, -1)
    out = -(w_col.unsqueeze(2) - x_col.unsqueeze(0)).abs().sum(1)
    return out.view(n_filters, h_out, w_out, n_x).permute(3, 0, 1, 2).contiguous()


class Adder2d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding
        self.adder = nn.Parameter(torch.randn(cout, cin, k, k))

    def forward(self, x: Tensor) -> Tensor:
        return official_adder2d(x, self.adder, self.stride, self.padding)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = Adder2d(cin, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = Adder2d(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(Adder2d(cin, planes, 1, stride),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class OfficialAdderResNet20(nn.Module):
    """`resnet20()` of the official resnet20.py. `adder_ends = True` makes the first conv and
    `fc` adder layers too (same weights, other function), only to show the test can fail."""

    adder_ends = False

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, planes in enumerate((16, 32, 64)):
            blocks = []
            for j in range(3):
                blocks.append(BasicBlock(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Conv2d(64, classes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(classes)

    def forward(self, x: Tensor) -> Tensor:
        x = (official_adder2d(x, self.conv1.weight, 1, 1) if self.adder_ends
             else self.conv1(x))
        x = F.relu(self.bn1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.avg_pool2d(x, 8, stride=1)
        x = official_adder2d(x, self.fc.weight, 1, 0) if self.adder_ends else self.fc(x)
        return self.bn2(x).view(x.size(0), -1)


RENAMES = (  # official name -> nasir's: only the adder layers' weight is called `adder`
    (r"\.(conv\d)\.adder$", r".\1.weight"),
    (r"\.downsample\.0\.adder$", ".downsample.0.weight"),
)


def nasir_name(official: str) -> str:
    for pattern, repl in RENAMES:
        official = re.sub(pattern, repl, official)
    return official


def test_official_adder2d_transcription_is_the_l1_distance() -> None:
    """The unfold transcription agrees with the definition -sum |x - w| computed directly
    (one output pixel of a padded, strided layer, batch 2)."""
    torch.manual_seed(2)
    x, w = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3)
    y = official_adder2d(x, w, stride=2, padding=1)
    x_pad = F.pad(x, (1, 1, 1, 1))
    for n, o, i, j in ((0, 0, 0, 0), (1, 3, 2, 1), (1, 2, 0, 2)):
        window = x_pad[n, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
        assert torch.allclose(y[n, o, i, j], -(window - w[o]).abs().sum())


def test_addernet20_equals_the_official_function() -> None:
    torch.manual_seed(0)
    reference = OfficialAdderResNet20()
    randomize_for_comparison(reference, torch.randn(4, 3, 32, 32))
    ours = nasir.compile("addernet20").eval()
    copy_renamed(reference, ours, nasir_name)
    x = torch.randn(2, 3, 32, 32)
    diff, scale = max_abs_diff(ours, reference, x)
    print(f"AdderNet ResNet-20 at 2x3x32x32: max |diff| {diff:.3g} (logits up to {scale:.3g})")
    assert diff <= 1e-4 * max(1.0, scale)

    # The comparison can fail: adder first conv and fc (instead of the official
    # multiplicative ones), or one nudged adder weight, move the logits far beyond it.
    OfficialAdderResNet20.adder_ends = True
    try:
        assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
    finally:
        OfficialAdderResNet20.adder_ends = False
    with torch.no_grad():
        ours.get_parameter("layer2.0.conv1.weight")[0, 0, 1, 1] += 1.0
    assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
