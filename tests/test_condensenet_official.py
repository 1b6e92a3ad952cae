"""nasir's CondenseNet computes the official function, not only the official counts.

The reference below is a transcription, written here, of the CondenseNet training network
(Huang et al., "CondenseNet: An Efficient DenseNet using Learned Group Convolutions", CVPR
2018) as the official code builds it (ShichenLiu/CondenseNet, models/condensenet.py and
layers.py): `features.init_conv` (3x3, stride 1 on CIFAR / 2 on ImageNet, no bias); dense
blocks of `_DenseLayer`s, each `conv_1` = `LearnedGroupConv` (BN `norm`, ReLU, a 1x1 conv
`conv` whose weight is multiplied by the buffer `_mask`, groups=1 in the conv itself) to
bottleneck 4 x growth, then `conv_2` = `Conv` (BN `norm`, ReLU, 3x3 group conv `conv`, no
bias) to growth, concatenated after the layer's input; 2x2 average-pool transitions;
`norm_last`, `relu_last`, `pool_last` (8 on CIFAR, 7 on ImageNet); flatten; `classifier`
(a plain nn.Linear in the training network). The learned-group masks are made non-trivial
by the official `_dropping` rule (transcribed here) applied once per condensing stage, so
that every group keeps in/C of its input columns, as at the end of the condensing stages.
Names are the official ones; nasir's differ only where specs/condensenet.arch says: the
buffers `conv_1._mask` and `conv_1._stage` are `conv_1.conv.mask` and `conv_1.conv.stage`
(a long scalar there, a float of shape (1,) here), and `_count` has no counterpart (nasir
derives the dropped count from the stage).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import nasir
from nasir.testing.equivalence import copy_renamed, max_abs_diff, randomize_for_comparison


class LearnedGroupConv(nn.Module):
    """The official LearnedGroupConv at inference with the global progress left at 0, so
    `_check_drop` changes nothing. `use_mask = False` ignores the mask, only to show the test
    can fail."""

    use_mask = True

    def __init__(self, cin: int, cout: int, groups: int, condense_factor: int) -> None:
        super().__init__()
        self.groups, self.condense_factor = groups, condense_factor
        self.norm = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.register_buffer("_count", torch.zeros(1))
        self.register_buffer("_stage", torch.zeros(1))
        self.register_buffer("_mask", torch.ones(self.conv.weight.size()))

    def forward(self, x: Tensor) -> Tensor:
        weight = self.conv.weight * self._mask if self.use_mask else self.conv.weight
        return F.conv2d(F.relu(self.norm(x)), weight)

    def dropping(self, delta: int) -> None:
        """`_dropping`: each group zeroes its `delta` least important (L1 over the group's
        filters, filter o in group o mod G) not yet dropped input columns."""
        out, cin = self.conv.weight.shape[:2]
        d_out = out // self.groups
        weight = (self.conv.weight * self._mask).abs().squeeze()
        weight = weight.view(d_out, self.groups, cin).transpose(0, 1).reshape(out, cin)
        count = int(self._count[0])
        for i in range(self.groups):
            di = weight[i * d_out:(i + 1) * d_out].sum(0).sort()[1][count:count + delta]
            self._mask[i::self.groups, di] = 0
        self._count.fill_(count + delta)

    def condense_fully(self) -> None:
        """All C - 1 condensing stages, one `_dropping` of in // C columns each."""
        for stage in range(1, self.condense_factor):
            self.dropping(self.conv.in_channels // self.condense_factor)
            self._stage.fill_(stage)


class Conv(nn.Sequential):
    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(cin))
        self.add_module("relu", nn.ReLU())
        self.add_module("conv", nn.Conv2d(cin, cout, 3, 1, 1, bias=False, groups=groups))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, groups: int) -> None:
        super().__init__()
        self.conv_1 = LearnedGroupConv(cin, 4 * growth, groups, groups)
        self.conv_2 = Conv(4 * growth, growth, groups)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv_2(self.conv_1(x))], 1)


class OfficialCondenseNet(nn.Module):
    def __init__(self, stages: list[int], growth: list[int], imagenet: bool, groups: int,
                 classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential()
        width = 2 * growth[0]
        self.features.add_module("init_conv", nn.Conv2d(3, width, 3, 2 if imagenet else 1, 1,
                                                        bias=False))
        for i, (layers, k) in enumerate(zip(stages, growth, strict=True)):
            block = nn.Sequential()
            for j in range(layers):
                block.add_module(f"denselayer_{j + 1}", DenseLayer(width + j * k, k, groups))
            self.features.add_module(f"denseblock_{i + 1}", block)
            width += layers * k
            if i < len(stages) - 1:
                self.features.add_module(f"transition_{i + 1}", nn.AvgPool2d(2, 2))
        self.features.add_module("norm_last", nn.BatchNorm2d(width))
        self.features.add_module("relu_last", nn.ReLU())
        self.features.add_module("pool_last", nn.AvgPool2d(7 if imagenet else 8))
        self.classifier = nn.Linear(width, classes)

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x)
        return self.classifier(features.view(features.size(0), -1))


def nasir_state(reference: nn.Module) -> dict[str, Tensor]:
    """The official state dict under nasir's names (see the module docstring)."""
    out = {}
    for key, value in reference.state_dict().items():
        if key.endswith("._count"):
            continue
        if key.endswith("._mask"):
            key = key.replace("._mask", ".conv.mask")
        elif key.endswith("._stage"):
            key, value = key.replace("._stage", ".conv.stage"), value.reshape(()).long()
        out[key] = value
    return out


@pytest.mark.parametrize(("name", "config", "shape"), [
    ("condensenet_cifar", dict(stages=[3, 3, 3], growth=[8, 16, 32], imagenet=False, groups=4,
                               classes=10), (2, 3, 32, 32)),
    ("condensenet_imagenet", dict(stages=[1, 1, 2, 1, 1], growth=[8, 16, 32, 64, 128],
                                  imagenet=True, groups=8, classes=1000), (1, 3, 224, 224)),
])
def test_condensenet_equals_the_official_training_network(name: str, config: dict,
                                                           shape: tuple[int, ...]) -> None:
    """The CIFAR layout with G = C = 4 and the ImageNet layout with G = C = 8, at fewer
    layers per block than CondenseNet-86 / -74 (to stay fast), with fully condensed masks."""
    torch.manual_seed(0)
    reference = OfficialCondenseNet(**config)
    lgcs = [m for m in reference.modules() if isinstance(m, LearnedGroupConv)]
    with torch.no_grad():
        for m in lgcs:
            m.condense_fully()
    assert all(m._mask.mean().item() == pytest.approx(1 / m.groups) for m in lgcs)
    randomize_for_comparison(reference, torch.randn(shape))
    g = config["groups"]
    ours = nasir.compile(name, stages=config["stages"], group_1x1=g, group_3x3=g, condense=g,
                         classifier_keep=1.0).eval()
    copy_renamed(nasir_state(reference), ours)
    x = torch.randn(shape)
    diff, scale = max_abs_diff(ours, reference, x)
    print(f"{name} at {'x'.join(map(str, shape))}: max |diff| {diff:.3g} "
          f"(logits up to {scale:.3g})")
    assert diff <= 1e-4 * max(1.0, scale)

    # The comparison can fail: the reference without its masks differs, and so does nasir's
    # module with one kept weight nudged, while nudging a masked-out weight changes nothing.
    LearnedGroupConv.use_mask = False
    try:
        assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
    finally:
        LearnedGroupConv.use_mask = True
    layer = "features.denseblock_2.denselayer_1.conv_1.conv"
    mask = ours.get_buffer(f"{layer}.mask")
    dropped, kept = (mask == 0).nonzero()[0].tolist(), (mask == 1).nonzero()[0].tolist()
    with torch.no_grad():
        ours.get_parameter(f"{layer}.weight")[tuple(dropped)] += 1.0
    assert max_abs_diff(ours, reference, x)[0] <= 1e-4 * max(1.0, scale)
    with torch.no_grad():
        ours.get_parameter(f"{layer}.weight")[tuple(kept)] += 1.0
    assert max_abs_diff(ours, reference, x)[0] > 100 * max(diff, 1e-6)
