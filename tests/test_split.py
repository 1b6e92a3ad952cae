"""Divide-and-Co-training (SplitNet, Zhao et al., arXiv 2011.14660): divided WRNs and the
ensemble that combines their members.

Golden figures: paper Table 2 / repo miscs/checkpoints.md (WRN-28-10 on CIFAR-100 and CIFAR-10),
with the exact totals that follow from the official model/resnet.py
(/work/shared/reference/papers.md §4, [calc]).
"""

from __future__ import annotations

import pytest
import torch

import nasir
from nasir.errors import SpecError
from nasir.layers.ensemble import Ensemble, ensemble
from nasir.passes.costs import CountingPolicy, count_costs
from nasir.testing.checks import assert_static_matches_torch


def totals(name: str, **params):
    return nasir.stats(nasir.load(name, **params)).total


def test_wrn28_10_cifar100_s1_has_36_539_124_params() -> None:
    assert totals("splitnet_wrn28_10_c100_s1").params == 36_539_124


def test_wrn28_10_cifar100_s2_has_35_855_016_params_17_927_508_per_net() -> None:
    report = count_costs(nasir.load("splitnet_wrn28_10_c100_s2"))
    assert report.total.params == 35_855_016
    assert report.scopes["net0"].params == report.scopes["net1"].params == 17_927_508


def test_wrn28_10_cifar100_s4_params_within_1pct_of_table2_36_7m() -> None:
    assert totals("splitnet_wrn28_10_c100_s4").params == pytest.approx(36.7e6, rel=0.01)


@pytest.mark.parametrize(("split", "thousands"), [(1, 36_481), (2, 35_774), (4, 36_535)])
def test_wrn28_10_cifar10_params_match_the_calculated_totals(split: int, thousands: int) -> None:
    params = totals(f"splitnet_wrn28_10_c10_s{split}").params
    assert (params + 500) // 1000 == thousands


@pytest.mark.parametrize(("split", "mega_macs"), [(1, 5243), (2, 5150)])
def test_wrn28_10_cifar100_macs_match_the_calculated_gflops(split: int, mega_macs: int) -> None:
    macs = totals(f"splitnet_wrn28_10_c100_s{split}").macs
    assert (macs + 500_000) // 1_000_000 == mega_macs


@pytest.mark.parametrize(("split", "widen"), [(1, 10), (2, 7), (4, 5)])
def test_widen_factor_divides_as_int_k_over_sqrt_s_plus_0_4(split: int, widen: int) -> None:
    ir = nasir.load("splitnet_wrn", split=split)
    members = sorted({n.scope[0] for n in ir.nodes() if n.scope})
    assert members == [f"net{i}" for i in range(split)]
    for member in members:
        assert ir.node(f"{member}/conv").shape[0] == 16  # the stem is not divided
        assert ir.node(f"{member}/layer3/block3/conv2").shape[0] == 64 * widen


def test_strided_shortcut_is_resnet_d_avgpool_then_1x1_conv() -> None:
    ir = nasir.load("splitnet_wrn28_10_c100_s2")
    pool = ir.node("net0/layer2/block0/downsample/pool")
    assert (pool.op, pool.attrs.kernel, pool.attrs.stride) == ("avgpool", 2, 2)
    assert pool.attrs.ceil and not pool.attrs.count_pad
    assert ir.node("net0/layer2/block0/downsample/conv").attrs.stride == 1
    assert not any(n.startswith("net0/layer1/block0/downsample/pool") for n in ir.graph)


def test_static_counts_match_the_compiled_torch_module() -> None:
    assert_static_matches_torch(nasir.load("splitnet_wrn28_10_c100_s2"))


def test_each_member_reads_its_own_view_when_views_are_enabled() -> None:
    ir = nasir.load("splitnet_wrn", depth=10, widen=1, split=3, classes=5, views=True)
    assert ir.inputs == ["view", "view_1", "view_2"]
    for i, view in enumerate(ir.inputs):
        assert ir.node(f"net{i}/conv").inputs == (view,)
    model = nasir.compile(ir).eval()
    views = [torch.randn(2, 3, 32, 32) for _ in range(3)]
    with torch.no_grad():
        members = [getattr(model, f"net{i}")(v) for i, v in enumerate(views)]
        out = model(*views)
    torch.testing.assert_close(out, (members[0] + members[1] + members[2]) / 3)


def test_members_share_one_input_by_default() -> None:
    ir = nasir.load("splitnet_wrn", depth=10, widen=1, split=2)
    assert ir.inputs == ["x"]
    assert ir.node("net0/conv").inputs == ir.node("net1/conv").inputs == ("x",)


def _three_logits(mode: str):
    ir = nasir.load(f"""
    network combine() {{
        input a: 7
        input b: 7
        input c: 7
        return ensemble(a, b, c, mode="{mode}")
    }}""", text=True)
    return nasir.compile(ir).eval()


@pytest.mark.parametrize("mode", ["mean", "softmax_mean", "max", "softmax_max"])
def test_ensemble_modes_match_torch(mode: str) -> None:
    a, b, c = (torch.randn(4, 7) for _ in range(3))
    expected = {
        "mean": (a + b + c) / 3,
        "softmax_mean": (a.softmax(1) + b.softmax(1) + c.softmax(1)) / 3,
        "max": torch.maximum(torch.maximum(a, b), c),
        "softmax_max": torch.maximum(torch.maximum(a.softmax(1), b.softmax(1)), c.softmax(1)),
    }[mode]
    torch.testing.assert_close(_three_logits(mode)(a, b, c), expected)
    torch.testing.assert_close(ensemble(a, b, c, mode=mode), expected)


def test_ensemble_of_one_member_is_the_identity() -> None:
    x = torch.randn(3, 5)
    assert torch.equal(Ensemble("mean")(x), x)


def test_ensemble_is_an_eltwise_cost_counted_only_under_the_eltwise_policy() -> None:
    ir = nasir.load("splitnet_wrn", depth=10, widen=1, split=4, classes=10)
    node = "ensemble"
    paper = count_costs(ir).nodes[node]
    eltwise = count_costs(ir, CountingPolicy(eltwise=True)).nodes[node]
    assert (paper.params, paper.macs, paper.adds) == (0, 0, 0)
    assert (eltwise.adds, eltwise.muls) == (3 * 10, 10)  # (S-1)·n adds, n scalings


def test_ensemble_rejects_feature_maps_and_unequal_logits() -> None:
    with pytest.raises(SpecError, match="flat logit vectors"):
        nasir.load("""
        network bad() { input x: 3x4x4
            return ensemble(x, x) }""", text=True)
    with pytest.raises(SpecError, match="equal shapes"):
        nasir.load("""
        network bad() { input x: 8
            return ensemble(x, x >> linear(4)) }""", text=True)


def test_ensemble_rejects_an_unknown_mode() -> None:
    with pytest.raises(SpecError, match="mode"):
        nasir.load("""
        network bad() { input x: 8
            return ensemble(x, x, mode="median") }""", text=True)
