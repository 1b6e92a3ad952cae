"""Static cost counting: formulas, the counting policy, and totals that add up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nasir
from nasir.errors import SpecError
from nasir.passes.costs import CountingPolicy, count_costs


def load(text: str):
    return nasir.load(text, text=True)


NET = """
network net() {
    input x: 8x16x16
    y = x >> conv(16, 3, groups=2) as c >> bn as b >> relu as r
    y = y >> maxpool(2) as p
    return y + y >> gap >> flatten >> linear(10) as fc
}"""


def test_grouped_conv_macs_follow_the_textbook_formula():
    report = count_costs(load(NET))
    # out 16x16x16 positions, each (8/2)*3*3 = 36 multiply-accumulates
    assert report.nodes["c"].macs == 16 * 16 * 16 * 36
    assert report.nodes["c"].params == 16 * 36
    assert report.nodes["fc"].params == 16 * 10 + 10


def test_paper_policy_counts_dense_layers_only_and_says_so():
    report = count_costs(load(NET))
    assert report.total.muls == report.total.adds == report.total.macs
    assert report.nodes["b"].muls == 0 and report.nodes["r"].other == 0
    assert "not counted: bn, act, pool, eltwise" in report.policy.describe()


def test_all_policy_adds_bn_activation_pool_and_elementwise_ops():
    paper = count_costs(load(NET))
    full = count_costs(load(NET), CountingPolicy.parse("all"))
    assert full.total.macs == paper.total.macs  # MACs never depend on the policy
    n = 16 * 16 * 16
    assert full.nodes["b"].muls == n and full.nodes["b"].adds == n
    assert full.nodes["r"].other == n
    assert full.nodes["p"].other == 16 * 8 * 8 * 3
    assert full.total.flops > paper.total.flops
    assert full.policy.name == "all"


def test_policy_parse_rejects_unknown_words():
    assert CountingPolicy.parse("bn,act") == CountingPolicy(bn=True, act=True)
    with pytest.raises(SpecError, match="unknown counting option 'relu'"):
        CountingPolicy.parse("bn,relu")


def test_scope_totals_are_exact_sums_of_their_nodes():
    ir = nasir.load("resnet20")
    report = count_costs(ir, CountingPolicy.parse("all"))
    for scope, totals in report.scopes.items():
        inside = [t for node_id, t in report.nodes.items() if node_id.startswith(scope + "/")]
        assert totals.params == sum(t.params for t in inside)
        assert totals.flops == sum(t.flops for t in inside)
    top = [s for s in report.scopes if "/" not in s]
    loose = [t for node_id, t in report.nodes.items() if "/" not in node_id]
    assert report.total.macs == sum(report.scopes[s].macs for s in top) + sum(t.macs
                                                                              for t in loose)


def test_activation_memory_counts_every_node_output():
    report = count_costs(load(NET))
    assert report.nodes["c"].activations == 16 * 16 * 16
    assert report.total.activations == sum(t.activations for t in report.nodes.values())


@given(st.lists(st.integers(0, 10**12), min_size=12, max_size=12))
def test_totals_add_sums_every_field(values: list[int]) -> None:
    from dataclasses import fields

    from nasir.passes.costs import Totals

    names = [f.name for f in fields(Totals)]
    a = Totals(**dict(zip(names, values[:6], strict=False)))
    b = Totals(**dict(zip(names, values[6:], strict=False)))
    a.add(b)
    assert [getattr(a, n) for n in names] == [x + y for x, y in zip(values[:6], values[6:12],
                                                                     strict=False)]
