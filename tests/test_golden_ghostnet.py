"""GhostNet (Han et al., CVPR 2020) as shipped in specs/ghostnet.arch, against published counts.

Exact figures are the official PyTorch code's (huawei-noah/Efficient-AI-Backbones,
ghostnet_pytorch/ghostnet.py) as recorded in /work/shared/reference/papers.md §1; rounded
figures are the paper's Table 7 and must be reproduced within 1%.
"""

from __future__ import annotations

import pytest

import nasir
from nasir.ir.graph import IR
from nasir.testing.checks import assert_static_matches_torch

# Table 7 of the paper: (network, params, MACs) as printed (2.6M / 42M, 7.3M / 226M).
TABLE_7_ROUNDED = [
    ("ghostnet_0_5", 2.6e6, 42e6),
    ("ghostnet_1_3", 7.3e6, 226e6),
]


def totals(ir: IR) -> tuple[int, int]:
    """(params, MACs) under the paper's counting policy (conv + FC MACs, BN affine params)."""
    total = nasir.stats(ir, policy="paper").total
    return total.params, total.macs


@pytest.fixture(scope="module")
def ghostnet_1_0() -> IR:
    return nasir.load("ghostnet")


def test_ghostnet_1_0_has_exactly_the_official_codes_5182508_params_and_141150512_macs(
    ghostnet_1_0: IR,
):
    """Paper Table 7 "5.2M / 141M"; the exact counts come from instantiating official code."""
    assert totals(ghostnet_1_0) == (5_182_508, 141_150_512)


def test_ghostnet_default_width_is_1_0(ghostnet_1_0: IR):
    assert ghostnet_1_0.params["width"] == 1.0
    assert totals(nasir.load("ghostnet", width=1.0)) == totals(ghostnet_1_0)


@pytest.mark.parametrize(("network", "params", "macs"), TABLE_7_ROUNDED)
def test_ghostnet_widths_match_paper_table_7_within_1_percent(network: str, params: float,
                                                              macs: float):
    got_params, got_macs = totals(nasir.load(network))
    assert got_params == pytest.approx(params, rel=0.01)
    assert got_macs == pytest.approx(macs, rel=0.01)


@pytest.mark.parametrize("network", ["ghostnet", "ghostnet_0_5", "ghostnet_1_3"])
def test_ghostnet_static_counts_equal_what_the_compiled_module_measures(network: str):
    assert_static_matches_torch(nasir.load(network))


def test_ghostnet_has_16_bottlenecks_in_9_stages_with_se_where_table_1_puts_it(
    ghostnet_1_0: IR,
):
    kinds = ghostnet_1_0.scope_kinds
    bottlenecks = sorted(p for p, kind in kinds.items() if kind == ("block", "ghost_bottleneck"))
    assert len(bottlenecks) == 16
    assert {p.split("/")[1] for p in bottlenecks} == {f"stage{i}" for i in range(9)}
    with_se = sorted(p.rsplit("/", 1)[0] for p in kinds if p.endswith("/se"))
    assert with_se == [
        "blocks/stage3/block0", "blocks/stage4/block0", "blocks/stage6/block3",
        "blocks/stage6/block4", "blocks/stage7/block0", "blocks/stage8/block1",
        "blocks/stage8/block3",
    ]


def test_ghostnet_projection_shortcut_exactly_where_width_or_stride_changes(ghostnet_1_0: IR):
    """Official rule: identity iff in == out and stride == 1 (else dw + BN + 1x1 + BN)."""
    shortcuts = sorted(p.rsplit("/", 1)[0] for p in ghostnet_1_0.scope_kinds
                       if p.endswith("/shortcut"))
    assert shortcuts == [
        "blocks/stage1/block0", "blocks/stage3/block0", "blocks/stage5/block0",
        "blocks/stage6/block3", "blocks/stage7/block0",
    ]


def test_ghostnet_head_is_960_to_1280_with_bias_then_linear(ghostnet_1_0: IR):
    module = nasir.compile(ghostnet_1_0)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes["blocks.stage9.conv.weight"] == (960, 160, 1, 1)
    assert shapes["conv_head.weight"] == (1280, 960, 1, 1)
    assert shapes["conv_head.bias"] == (1280,)
    assert shapes["classifier.weight"] == (1000, 1280)
    assert shapes["conv_stem.weight"] == (16, 3, 3, 3)


def test_ghostnet_parameter_names_follow_the_official_module_tree(ghostnet_1_0: IR):
    keys = set(nasir.compile(ghostnet_1_0).state_dict())
    block = "blocks.stage3.block0."
    for name in ("ghost1.primary_conv.conv.weight", "ghost1.cheap_operation.conv.weight",
                 "conv_dw.weight", "bn_dw.weight", "se.reduce.bias", "se.expand.bias",
                 "ghost2.primary_conv.bn.weight", "ghost2.cheap_operation.bn.weight",
                 "shortcut.dw.weight", "shortcut.pw_bn.weight"):
        assert block + name in keys, name
    assert {"conv_stem.weight", "bn1.weight", "conv_head.bias", "classifier.bias"} <= keys


def test_ghostnet_se_reduce_width_is_make_divisible_of_mid_quarter(ghostnet_1_0: IR):
    """SE reduce = _make_divisible(mid * 0.25, 4): mid 72 -> 20 (not 18), mid 672 -> 168."""
    keys = nasir.compile(ghostnet_1_0).state_dict()
    assert keys["blocks.stage3.block0.se.reduce.weight"].shape[:2] == (20, 72)
    assert keys["blocks.stage7.block0.se.reduce.weight"].shape[:2] == (168, 672)
