"""nasir's NASNet-A computes the official function.

The reference below is a transcription, written here, of NASNet-A as published (Zoph et al.,
CVPR 2018) and implemented by TF-slim (`nasnet.py`, `nasnet_utils.py`): the ImageNet stem
(conv0 3x3/2 VALID, two reduction cells), normal and reduction cells with their hidden-state
indices, `_reduce_prev_layer`, `factorized_reduction`, `_combine_unused_states`, BN eps 1e-3.
TensorFlow "SAME" padding is reproduced as the PyTorch port of the TF weights (Cadene's
pretrainedmodels) does it, independently of nasir's asymmetric pads: a strided op on an even
map runs with k//2 padding on a map padded with one top-left row/column, and its first output
row/column is cropped. Module names follow nasir's (which follow TF-slim's scopes), so the
weights are copied by name after checking that names and shapes agree one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import nasir
from nasir.layers.drop_path import ScheduledDropPath, set_drop_path_progress
from nasir.testing.equivalence import copy_renamed, randomize_for_comparison

EPS = 1e-3  # TF-slim nasnet_mobile/large_arg_scope

NORMAL = (  # (left op, right op, left input, right input) per combination, TF-slim order
    ("separable_5x5_2", "separable_3x3_2", 0, 1),
    ("separable_5x5_2", "separable_3x3_2", 1, 1),
    ("avg_pool_3x3", "none", 0, 1),
    ("avg_pool_3x3", "avg_pool_3x3", 1, 1),
    ("separable_3x3_2", "none", 0, 0),
)
NORMAL_USED = (1, 0, 0, 0, 0, 0, 0)
REDUCTION = (
    ("separable_5x5_2", "separable_7x7_2", 0, 1),
    ("max_pool_3x3", "separable_7x7_2", 0, 1),
    ("avg_pool_3x3", "separable_5x5_2", 0, 1),
    ("none", "avg_pool_3x3", 3, 2),
    ("separable_3x3_2", "max_pool_3x3", 2, 0),
)
REDUCTION_USED = (1, 1, 1, 0, 0, 0, 0)


class TfSame(nn.Module):
    """An op run as TF "SAME" from one built with k//2 padding: at stride 2 on an even map,
    pad one zero row/column at the top-left, run, crop the first output row/column.
    `tf_same = False` gives the symmetric padding nasir used before."""

    tf_same = True

    def same(self, op: nn.Module, x: Tensor, stride: int) -> Tensor:
        if self.tf_same and stride == 2 and x.shape[-1] % 2 == 0:
            return op(F.pad(x, (1, 0, 1, 0)))[:, :, 1:, 1:]
        return op(x)


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=EPS)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class Separable(nn.Module):
    """slim.separable_conv2d with depth_multiplier 1 and no bias."""

    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, k, stride, k // 2, groups=cin, bias=False)
        self.pointwise = conv1x1(cin, cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class StackedSeparable(TfSame):
    """`_stacked_separable_conv`: 2 x [ReLU, separable conv, BN]; stride on the first only."""

    def __init__(self, cin: int, f: int, k: int, stride: int) -> None:
        super().__init__()
        self.separable_1 = Separable(cin, f, k, stride)
        self.bn_sep_1 = bn(f)
        self.separable_2 = Separable(f, f, k, 1)
        self.bn_sep_2 = bn(f)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn_sep_1(self.same(self.separable_1, F.relu(x), self.stride))
        return self.bn_sep_2(self.separable_2(F.relu(x)))


class Pooling(TfSame):
    """`_pooling` (SAME; average excludes padding), then 1x1 conv + BN if not F wide."""

    def __init__(self, kind: str, cin: int, f: int, stride: int) -> None:
        super().__init__()
        self.pool = (nn.MaxPool2d(3, stride, 1) if kind == "max"
                     else nn.AvgPool2d(3, stride, 1, count_include_pad=False))
        self.stride = stride
        if cin != f:
            self.conv_1x1, self.bn_1 = conv1x1(cin, f), bn(f)

    def forward(self, x: Tensor) -> Tensor:
        x = self.same(self.pool, x, self.stride)
        return self.bn_1(self.conv_1x1(x)) if hasattr(self, "conv_1x1") else x


class NoneOp(nn.Module):
    """The 'none' op: identity, or ReLU + strided 1x1 conv + BN if stride or width change."""

    def __init__(self, cin: int, f: int, stride: int) -> None:
        super().__init__()
        if stride > 1 or cin != f:
            self.conv_1x1, self.bn_1 = conv1x1(cin, f, stride), bn(f)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn_1(self.conv_1x1(F.relu(x))) if hasattr(self, "conv_1x1") else x


class FactorizedReduction(nn.Module):
    """`factorized_reduction` at stride 2: 1x1 convs on the even grid and on the grid shifted
    by TF's pad-bottom/right-crop-top/left, concatenated, BN."""

    def __init__(self, cin: int, f: int) -> None:
        super().__init__()
        self.path1_conv = conv1x1(cin, f // 2)
        self.path2_conv = conv1x1(cin, f // 2 + f % 2)
        self.final_path_bn = bn(f)

    def forward(self, x: Tensor) -> Tensor:
        path1 = self.path1_conv(x[:, :, ::2, ::2])
        path2 = self.path2_conv(F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:][:, :, ::2, ::2])
        return self.final_path_bn(torch.cat([path1, path2], 1))


def make_op(name: str, cin: int, f: int, stride: int) -> nn.Module:
    if name.startswith("separable"):
        return StackedSeparable(cin, f, int(name[10]), stride)
    if name.endswith("pool_3x3"):
        return Pooling(name[:3], cin, f, stride)
    return NoneOp(cin, f, stride)


class Scope(nn.Module):
    """A named container, so that state-dict keys spell TF-slim's (and nasir's) scopes."""


class Cell(nn.Module):
    """NasNetABaseCell.__call__ for a normal or reduction cell of F filters."""

    def __init__(self, kind: str, cur: tuple[int, int], prev: tuple[int, int] | None,
                 f: int) -> None:
        super().__init__()
        self.table = NORMAL if kind == "normal" else REDUCTION
        self.used = NORMAL_USED if kind == "normal" else REDUCTION_USED
        stride = 1 if kind == "normal" else 2
        self.conv_1x1, self.beginning_bn = conv1x1(cur[0], f), bn(f)
        self.prev_mode = "raw"
        if prev is not None and prev[1] != cur[1]:
            self.prev_mode = "factorized"
            self.reduce_prev_layer = Scope()
            self.reduce_prev_layer.factorized_reduction = FactorizedReduction(prev[0], f)
        elif prev is not None and prev[0] != f:
            self.prev_mode = "1x1"
            self.reduce_prev_layer = Scope()
            self.reduce_prev_layer.prev_1x1 = conv1x1(prev[0], f)
            self.reduce_prev_layer.prev_bn = bn(f)
        elif prev is not None:
            self.prev_mode = "same"
        widths = [f, f if prev is not None else cur[0]]
        for i, (left, right, li, ri) in enumerate(self.table):
            comb = Scope()
            for side, name, idx in (("left", left, li), ("right", right, ri)):
                op_stride = stride if idx < 2 else 1
                branch = Scope()
                setattr(branch, name, make_op(name, widths[idx], f, op_stride))
                setattr(comb, side, branch)
            setattr(self, f"comb_iter_{i}", comb)
            widths.append(f)
        self.out_channels = f * (len(widths) - sum(self.used))

    def forward(self, cur: Tensor, prev: Tensor | None) -> Tensor:
        if self.prev_mode == "factorized":
            prev = self.reduce_prev_layer.factorized_reduction(F.relu(prev))
        elif self.prev_mode == "1x1":
            prev = self.reduce_prev_layer.prev_bn(self.reduce_prev_layer.prev_1x1(F.relu(prev)))
        elif self.prev_mode == "raw":
            prev = cur
        states = [self.beginning_bn(self.conv_1x1(F.relu(cur))), prev]
        for i, (left, right, li, ri) in enumerate(self.table):
            comb = getattr(self, f"comb_iter_{i}")
            states.append(getattr(comb.left, left)(states[li])
                          + getattr(comb.right, right)(states[ri]))
        # _combine_unused_states: no unused state needs reducing in the ImageNet models.
        return torch.cat([s for s, used in zip(states, self.used, strict=True) if not used], 1)


class OfficialNasnetImagenet(nn.Module):
    """TF-slim `build_nasnet_mobile`/`build_nasnet_large` at inference, without aux head."""

    def __init__(self, num_cells: int = 12, filters: int = 44, stem_multiplier: float = 1.0,
                 skip_reduction_layer_input: int = 0, classes: int = 1000,
                 size: int = 224) -> None:
        super().__init__()
        stem_filters = int(32 * stem_multiplier)
        self.stem = Scope()
        self.stem.conv0 = nn.Conv2d(3, stem_filters, 3, 2, 0, bias=False)
        self.stem.conv0_bn = bn(stem_filters)
        shapes: list[tuple[int, int] | None] = [None, (stem_filters, (size - 3) // 2 + 1)]
        self.plan: list[tuple[str, str, int]] = []  # (container, cell, index of prev)

        def add(container: nn.Module, name: str, kind: str, f: int, prev: int) -> None:
            cur = shapes[-1]
            cell = Cell(kind, cur, shapes[prev], f)
            setattr(container, name, cell)
            size_out = cur[1] if kind == "normal" else -(-cur[1] // 2)
            shapes.append((cell.out_channels, size_out))

        scaling = 0.25
        for i in range(2):
            add(self.stem, f"cell_stem_{i}", "reduction", int(filters * scaling), -2)
            self.plan.append(("stem", f"cell_stem_{i}", len(shapes) - 3))
            scaling *= 2
        self.cells = Scope()
        reductions = [int(k / 3 * num_cells) for k in (1, 2)]
        scaling = 1.0
        for i in range(num_cells):
            skip_prev = len(shapes) - 2
            if i in reductions:
                scaling *= 2
                name = f"reduction_cell_{reductions.index(i)}"
                add(self.cells, name, "reduction", int(filters * scaling), -2)
                self.plan.append(("cells", name, len(shapes) - 3))
            prev = skip_prev if skip_reduction_layer_input else len(shapes) - 2
            add(self.cells, f"cell_{i}", "normal", int(filters * scaling), prev)
            self.plan.append(("cells", f"cell_{i}", prev))
        self.final_layer = Scope()
        self.final_layer.fc = nn.Linear(shapes[-1][0], classes)

    def forward(self, x: Tensor) -> Tensor:
        outputs: list[Tensor | None] = [None, self.stem.conv0_bn(self.stem.conv0(x))]
        for container, name, prev in self.plan:
            cell = getattr(getattr(self, container), name)
            outputs.append(cell(outputs[-1], outputs[prev]))
        y = F.relu(outputs[-1]).mean(dim=(2, 3))
        return self.final_layer.fc(y)  # dropout is the identity at inference


def copy_by_name(reference: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer; names and shapes must agree one to one (nasir's
    drop-path `progress` buffers, absent from the official module, excepted)."""
    copy_renamed(reference, target, target_only=lambda key: key.endswith(".progress"))


def _variants(reference: OfficialNasnetImagenet, ours: nn.Module, x: Tensor) -> dict:
    """Max |diff| of nasir's output against the official one, and against the official one
    with symmetric padding (nasir's old function) or with PyTorch's eps 1e-5; with the
    largest official logit for scale."""
    with torch.no_grad():
        got = ours(x)

    def _compare(reference: nn.Module, _: nn.Module, x: Tensor) -> tuple[float, float]:
        with torch.no_grad():
            expected = reference(x)
        return (got - expected).abs().max().item(), expected.abs().max().item()

    diffs = {"official": _compare(reference, ours, x)}
    same = [m for m in reference.modules() if isinstance(m, TfSame)]
    for m in same:
        m.tf_same = False
    diffs["symmetric_pad"] = _compare(reference, ours, x)
    for m in same:
        m.tf_same = True
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-5
    diffs["eps_1e-5"] = _compare(reference, ours, x)
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = EPS
    return diffs


def test_nasnet_a_mobile_equals_the_official_function() -> None:
    torch.manual_seed(0)
    reference = OfficialNasnetImagenet()
    x = torch.randn(1, 3, 224, 224)
    randomize_for_comparison(reference, torch.randn(1, 3, 224, 224))
    ours = nasir.compile("nasnet_a_mobile").eval()
    copy_by_name(reference, ours)
    diffs = _variants(reference, ours, x)
    print({k: f"{d:.3g} (logits up to {s:.3g})" for k, (d, s) in diffs.items()})
    diff, scale = diffs["official"]
    assert diff <= 1e-4 * max(1.0, scale)
    # The test sees both causes of the old mismatch: each alone moves the logits far more.
    assert diffs["symmetric_pad"][0] > 100 * max(diff, 1e-6)
    assert diffs["eps_1e-5"][0] > 100 * max(diff, 1e-6)


def test_reduced_nasnet_a_large_with_drop_path_equals_the_official_function() -> None:
    """Large's structure (stem multiplier 3, skip_reduction_layer_input, odd maps at 331,
    drop path keep 0.7) at fewer cells and filters; drop path is the identity in eval mode
    even at full training progress."""
    torch.manual_seed(1)
    config = dict(num_cells=3, filters=12, stem_multiplier=3.0, skip_reduction_layer_input=1)
    reference = OfficialNasnetImagenet(**config, size=331)
    randomize_for_comparison(reference, torch.randn(1, 3, 331, 331))
    ours = nasir.compile("nasnet_a_imagenet", drop_path_keep=0.7, size=331, **config).eval()
    assert set_drop_path_progress(ours, 1.0) > 0
    assert any(isinstance(m, ScheduledDropPath) for m in ours.modules())
    copy_by_name(reference, ours)
    diffs = _variants(reference, ours, torch.randn(1, 3, 331, 331))
    print({k: f"{d:.3g} (logits up to {s:.3g})" for k, (d, s) in diffs.items()})
    diff, scale = diffs["official"]
    assert diff <= 1e-4 * max(1.0, scale)
    assert diffs["symmetric_pad"][0] > 100 * max(diff, 1e-6)
