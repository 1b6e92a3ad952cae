"""nasir's MobileNetV2 computes torchvision's function, not only its counts.

The reference below is a transcription, written here, of MobileNetV2 (Sandler et al.,
"MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018) as torchvision's
`mobilenetv2.py` builds it: `_make_divisible(., 8)` widths; `features.0` = 3x3/2 conv + BN +
ReLU6 (`Conv2dNormActivation`, padding (k-1)//2, no bias); `features.1..17` =
`InvertedResidual` blocks from the [t, c, n, s] table (hidden width round(inp * t); 1x1
expansion + BN + ReLU6 unless t = 1, 3x3 depthwise with the stride + BN + ReLU6, linear 1x1
projection + BN, residual when stride 1 and inp == oup); `features.18` = 1x1 conv to 1280 + BN
+ ReLU6; global average pooling, flatten, `classifier` = Dropout(0.2), Linear. The reference
keeps torchvision's module names; the test translates them to nasir's (`features.0.0` ->
`stem_conv`, `features.K.conv.0.0` -> `stageI.blockJ.expand_conv`, ...) with a table built
from the [t, c, n, s] rows, and checks the translation is one to one with equal shapes.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import nasir
from nasir.testing.equivalence import copy_renamed, max_abs_diff, randomize_for_comparison

SETTINGS = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
            [6, 160, 3, 2], [6, 320, 1, 1]]  # t, c, n, s (paper Table 2)


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's `_make_divisible` with min_value = divisor."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_norm_act(cin: int, cout: int, k: int, stride: int = 1,
                  groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation with BatchNorm2d and ReLU6."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups,
                                   bias=False), nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    """torchvision's InvertedResidual. `linear_bottleneck = False` puts a ReLU6 after the
    projection (the paper's ablation), only to show the test can fail."""

    linear_bottleneck = True

    def __init__(self, inp: int, oup: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = round(inp * t)  # torchvision: int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = [conv_norm_act(inp, hidden, 1)] if t != 1 else []
        layers += [conv_norm_act(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if not self.linear_bottleneck:
            y = F.relu6(y)
        return x + y if self.use_res_connect else y


class TorchvisionMobileNetV2(nn.Module):
    def __init__(self, width: float = 1.0, classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        cin = make_divisible(32 * width)
        last = make_divisible(1280 * max(1.0, width))
        features: list[nn.Module] = [conv_norm_act(3, cin, 3, 2)]
        self.block_names: list[tuple[str, bool]] = []  # nasir scope, has expansion
        for i, (t, c, n, s) in enumerate(SETTINGS):
            cout = make_divisible(c * width)
            for j in range(n):
                features.append(InvertedResidual(cin, cout, s if j == 0 else 1, t))
                self.block_names.append((f"stage{i + 1}.block{j + 1}", t != 1))
                cin = cout
        features.append(conv_norm_act(cin, last, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, classes))

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))

    def nasir_name(self, official: str) -> str:
        """Translate a torchvision state-dict key to nasir's."""
        last = len(self.block_names) + 1
        head = {"features.0.0.": "stem_conv.", "features.0.1.": "stem_bn.",
                f"features.{last}.0.": "last_conv.", f"features.{last}.1.": "last_bn.",
                "classifier.1.": "classifier.fc."}
        for prefix, ours in head.items():
            if official.startswith(prefix):
                return ours + official[len(prefix):]
        m = re.fullmatch(r"features\.(\d+)\.conv\.(\d+(?:\.\d)?)\.(\w+)", official)
        assert m, official
        scope, expands = self.block_names[int(m[1]) - 1]
        # Without expansion (t = 1) torchvision's children start with the depthwise conv.
        parts = ["0.0", "0.1", "1.0", "1.1", "2", "3"] if expands else ["0.0", "0.1", "1", "2"]
        names = (["expand_conv", "expand_bn"] if expands else []) + [
            "dw_conv", "dw_bn", "project_conv", "project_bn"]
        return f"{scope}.{dict(zip(parts, names, strict=True))[m[2]]}.{m[3]}"


def test_mobilenet_v2_equals_torchvision() -> None:
    torch.manual_seed(0)
    reference = TorchvisionMobileNetV2()
    randomize_for_comparison(reference, torch.randn(2, 3, 112, 112))
    ours = nasir.compile("mobilenet_v2").eval()
    copy_renamed(reference, ours, reference.nasir_name)
    diff, scale = max_abs_diff(ours, reference, torch.randn(2, 3, 224, 224))
    print(f"MobileNetV2 at 2x3x224x224: max |diff| {diff:.3g} (logits up to {scale:.3g})")
    assert diff <= 1e-4 * max(1.0, scale)

    # The comparison can fail (on a smaller input, to stay fast): a ReLU6 after the
    # projection (no linear bottleneck) or one nudged weight moves the logits far more.
    x = torch.randn(1, 3, 112, 112)
    small, _ = max_abs_diff(ours, reference, x)
    assert small <= 1e-4 * max(1.0, scale)
    InvertedResidual.linear_bottleneck = False
    try:
        assert max_abs_diff(ours, reference, x)[0] > 100 * max(small, 1e-6)
    finally:
        InvertedResidual.linear_bottleneck = True
    with torch.no_grad():
        ours.get_parameter("stage4.block2.dw_conv.weight")[0, 0, 1, 1] += 1.0
    assert max_abs_diff(ours, reference, x)[0] > 100 * max(small, 1e-6)
