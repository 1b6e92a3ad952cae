"""The `adder` pass (AdderNet's adder layer in place of plain convs): fixture, laws over
random networks, and `adder` of the shipped ResNets against the shipped AdderNets."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import load_pass_fixture, op_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nasir
from nasir.errors import SpecError
from nasir.ir.graph import IR, scope_path
from nasir.passes.adder import linear_heads
from nasir.passes.costs import count_costs
from nasir.passes.ghost import protected_layers
from nasir.testing.checks import assert_static_matches_torch
from nasir.testing.strategies import irs

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_fixture_becomes_the_hand_written_adder_network() -> None:
    before = load_pass_fixture("small.arch")
    out = nasir.transform(before, ["adder"])
    assert out.signature() == load_pass_fixture("small.adder.arch").signature()
    # two convs became adders, the linear became a 1x1 conv + BN
    assert op_counts(out) - op_counts(before) == Counter({"adder": 2, "bn": 1})
    assert op_counts(before) - op_counts(out) == Counter({"conv": 1, "linear": 1})
    everything = nasir.transform(before, ["adder:keep_first=false,keep_last=false"])
    assert everything.node("stem").op == "adder" and everything.node("fc").op == "adder"
    kept_head = nasir.transform(before, ["adder:head=false"])
    assert kept_head.node("fc").op == "linear" and "bn2" not in kept_head
    assert [n.op for n in kept_head.nodes()][-3:] == ["gap", "flatten", "linear"]
    biased = nasir.transform(before, ["adder:fc_bias=true"])
    assert biased.node("fc").attrs.bias and not out.node("fc").attrs.bias


def test_a_flag_that_is_not_a_bool_is_a_clear_error() -> None:
    with pytest.raises(SpecError, match="keep_last='maybe' is not true or false"):
        nasir.transform(load_pass_fixture("small.arch"), ["adder:keep_last=maybe"])


@PROPERTY
@given(irs(), st.booleans(), st.booleans(), st.booleans())
def test_adder_is_pure_valid_counted_idempotent_and_keeps_costs(ir: IR, keep_first: bool,
                                                                 keep_last: bool,
                                                                 head: bool) -> None:
    before = ir.signature()
    step = ("adder", {"keep_first": keep_first, "keep_last": keep_last, "head": head})
    out = nasir.transform(ir, [step])
    assert ir.signature() == before  # the input is not mutated
    out.verify()
    assert_static_matches_torch(out)
    assert nasir.transform(out, [step]).signature() == out.signature()  # idempotent
    heads = linear_heads(ir) if head else {}
    # every head's linear became a 1x1 conv (or adder) + BN, whatever the flags
    for linear in heads:
        fc = out.node(linear)
        assert fc.op == ("conv" if keep_last and linear in protected_layers(
            ir, keep_first, keep_last) else "adder")
        assert (fc.attrs.kernel, fc.attrs.out, fc.attrs.bias) == (1, ir.node(linear).attrs.out,
                                                                  False)
    # the same node ids and shapes (a head's fc now C x 1 x 1), plus one BN per head; an adder
    # layer has the params and MAC terms of the conv it replaces, a head loses the linear's
    # bias and gains 2C BN params
    # (and a head's flatten, now after the BN, has the C logits)
    new = {scope_path(out.node(linear).scope, "bn2") for linear in heads}
    flats = {flat: ir.node(linear).shape for linear, (_, flat) in heads.items()}
    assert {n.id: n.shape for n in out.nodes() if n.id not in new} == {
        n.id: (*n.shape, 1, 1) if n.id in heads else flats.get(n.id, n.shape)
        for n in ir.nodes()}
    a, b = count_costs(ir).total, count_costs(out).total
    bn_params = sum(2 * out.node(i).attrs.out - out.node(i).attrs.out * ir.node(i).attrs.bias
                    for i in heads)
    assert (a.params + bn_params, a.macs) == (b.params, b.macs)
    kept = protected_layers(ir, keep_first, keep_last)
    dense = [n for n in ir.nodes() if n.op == "conv" and n.attrs.groups == 1
             and n.attrs.dilation == 1 and n.id not in kept]
    head_adders = [i for i in heads if i not in kept]
    assert sorted(n.id for n in out.nodes() if n.op == "adder") == sorted(
        [n.id for n in dense] + head_adders)


@pytest.mark.parametrize("resnet, addernet, step", [
    ("resnet20", "addernet20", "adder"),
    ("resnet32", "addernet32", "adder"),
    ("resnet50", "addernet_resnet50", "adder:fc_bias=true"),
])
def test_adder_of_the_shipped_resnet_is_the_shipped_addernet(resnet: str, addernet: str,
                                                             step: str) -> None:
    """Node ids, ops, attributes, inputs and shapes, costs of every scope, and the compiled
    modules' state-dict keys and shapes are all equal. ResNet-50 needs `fc_bias=true`: the
    official resnet50.py keeps the fc conv's default bias where resnet20.py drops it."""
    ours, theirs = nasir.transform(nasir.load(resnet), [step]), nasir.load(addernet)
    assert ours.signature() == theirs.signature()
    a, b = count_costs(ours), count_costs(theirs)
    assert a.total.as_dict() == b.total.as_dict()
    assert {k: v.as_dict() for k, v in a.scopes.items()} == {
        k: v.as_dict() for k, v in b.scopes.items()}
    # the head's BN is new (2C affine params), the linear's C bias terms go unless fc_bias
    fc = ours.node("fc").attrs
    assert a.total.params == nasir.stats(nasir.load(resnet)).total.params + (
        2 * fc.out - fc.out + fc.out * fc.bias)
    keys = {k: tuple(v.shape) for k, v in nasir.compile(ours).state_dict().items()}
    assert keys == {k: tuple(v.shape) for k, v in nasir.compile(theirs).state_dict().items()}


def test_default_adder_of_resnet50_differs_from_addernet50_only_by_the_fc_bias() -> None:
    """resnet20.py's bias-free fc is the default; resnet50.py's fc has 1,000 bias terms."""
    ours, theirs = nasir.transform(nasir.load("resnet50"), ["adder"]), nasir.load(
        "addernet_resnet50")
    diff = [(x, y) for x, y in zip(ours.signature(), theirs.signature(), strict=True) if x != y]
    assert [(x[0], x[2]["bias"], y[2]["bias"]) for x, y in diff] == [("fc", False, True)]
    assert nasir.stats(theirs).total.params - nasir.stats(ours).total.params == 1000


def test_adder_keeps_the_head_of_a_network_when_asked() -> None:
    """`head=false`: every conv of the blocks is an adder, the linear classifier stays."""
    ours = nasir.transform(nasir.load("resnet20"), ["adder:head=false"])
    theirs = nasir.load("addernet20")
    assert [n.op for n in ours.nodes()][-3:] == ["gap", "flatten", "linear"]
    body = [(n.id, n.op) for n in ours.nodes() if "/" in n.id]
    assert body == [(n.id, n.op) for n in theirs.nodes() if "/" in n.id]
