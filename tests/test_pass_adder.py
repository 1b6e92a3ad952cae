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
from nasir.ir.graph import IR
from nasir.passes.costs import count_costs
from nasir.passes.ghost import protected_layers
from nasir.testing.checks import assert_static_matches_torch
from nasir.testing.strategies import irs

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_fixture_becomes_the_hand_written_adder_network() -> None:
    before = load_pass_fixture("small.arch")
    out = nasir.transform(before, ["adder"])
    assert out.signature() == load_pass_fixture("small.adder.arch").signature()
    assert op_counts(out) - op_counts(before) == Counter({"adder": 2})
    assert op_counts(before) - op_counts(out) == Counter({"conv": 2})
    everything = nasir.transform(before, ["adder:keep_first=false,keep_last=false"])
    assert everything.node("stem").op == "adder" and everything.node("fc").op == "linear"


def test_a_flag_that_is_not_a_bool_is_a_clear_error() -> None:
    with pytest.raises(SpecError, match="keep_last='maybe' is not true or false"):
        nasir.transform(load_pass_fixture("small.arch"), ["adder:keep_last=maybe"])


@PROPERTY
@given(irs(), st.booleans(), st.booleans())
def test_adder_is_pure_valid_counted_idempotent_and_keeps_costs(ir: IR, keep_first: bool,
                                                                 keep_last: bool) -> None:
    before = ir.signature()
    step = ("adder", {"keep_first": keep_first, "keep_last": keep_last})
    out = nasir.transform(ir, [step])
    assert ir.signature() == before  # the input is not mutated
    out.verify()
    assert [(n.id, n.shape) for n in out.nodes()] == [(n.id, n.shape) for n in ir.nodes()]
    assert_static_matches_torch(out)
    assert nasir.transform(out, [step]).signature() == out.signature()  # idempotent
    # an adder layer has the params and MAC terms of the conv it replaces
    a, b = count_costs(ir).total, count_costs(out).total
    assert (a.params, a.macs) == (b.params, b.macs)
    kept = protected_layers(ir, keep_first, keep_last)
    dense = [n for n in ir.nodes() if n.op == "conv" and n.attrs.groups == 1
             and n.attrs.dilation == 1 and n.id not in kept]
    assert sorted(n.id for n in out.nodes() if n.op == "adder") == sorted(n.id for n in dense)


def _cifar_name(scope: str) -> str:
    """resnet_cifar's `stage{i}/block{j}` (1-based) is addernet's `layer{i}/block{j-1}`."""
    stage, block = scope.split("/")
    return f"layer{stage[5:]}/block{int(block[5:]) - 1}"


@pytest.mark.parametrize("resnet, addernet, rename", [
    ("resnet20", "addernet20", _cifar_name),
    ("resnet50", "addernet_resnet50", lambda scope: scope),
])
def test_adder_of_the_shipped_resnet_has_addernets_residual_blocks(resnet, addernet,
                                                                   rename) -> None:
    """Every residual block of `adder(resnet)` has the params and MACs (adder terms and
    BN) of the corresponding official AdderNet block, and the adder layers, in order, have
    the same attributes; the networks differ only outside the blocks (see below)."""
    ours, theirs = nasir.transform(nasir.load(resnet), ["adder"]), nasir.load(addernet)
    a, b = count_costs(ours), count_costs(theirs)
    blocks = [s for s in a.scopes if s.count("/") == 1]
    assert len(blocks) == len([s for s in b.scopes if s.count("/") == 1]) > 0
    for scope in blocks:
        mine, official = a.scopes[scope].as_dict(), b.scopes[rename(scope)].as_dict()
        assert mine == official, scope

    def adders(ir: IR) -> list[dict]:
        return [n.attrs.model_dump() for n in ir.nodes() if n.op == "adder"]

    assert adders(ours) == adders(theirs)
    adder_macs = [sum(r.nodes[n.id].macs for n in ir.nodes() if n.op == "adder")
                  for r, ir in ((a, ours), (b, theirs))]
    assert adder_macs[0] == adder_macs[1] > 0
    assert a.total.macs == b.total.macs


def test_the_differences_from_the_shipped_addernet20_are_only_naming_and_the_classifier(
        ) -> None:
    """What stands between `adder(resnet20)` and `addernet20` (a spec change, not a pass):
    block names, the shortcut's nesting, and the classifier (linear with bias vs the
    official 1x1 conv + BN), which costs addernet20 10 more parameters."""
    ours = nasir.transform(nasir.load("resnet20"), ["adder"])
    theirs = nasir.load("addernet20")
    top = {n.id: n.op for n in theirs.nodes() if "/" not in n.id}
    assert {k: v for k, v in top.items() if k not in {n.id for n in ours.nodes()}} == {
        "avgpool": "avgpool", "fc": "conv", "bn2": "bn", "flatten": "flatten"}
    assert [n.op for n in ours.nodes() if n.id.startswith("classifier/")] == [
        "gap", "flatten", "linear"]
    inner = {n.id.split("/", 2)[2] for n in ours.nodes() if n.id.count("/") >= 2}
    official = {n.id.split("/", 2)[2] for n in theirs.nodes() if n.id.count("/") >= 2}
    assert inner ^ official == {"downsample/conv", "downsample/bn", "downsample_adder",
                                "downsample_bn"}
    assert nasir.stats(theirs).total.params - nasir.stats(ours).total.params == 10
