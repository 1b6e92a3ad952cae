"""The `learned_group_conv` and `condensing_linear` ops: shape rules, the two cost forms, and
lowering (CondenseNet, Huang et al., CVPR 2018; official `LearnedGroupConv`,
`CondensingConv` and `CondensingLinear`)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import nasir
from nasir.errors import SpecError
from nasir.ir.graph import IR
from nasir.layers.learned_group_conv import CondensedGroupConv, LearnedGroupConv
from nasir.passes.costs import CountingPolicy, Totals, count_costs
from nasir.testing.checks import assert_static_matches_torch

CONDENSED = CountingPolicy(condensed=True)


def one_op(shape: str, call: str) -> IR:
    """IR of a network that applies one op call, labelled `op`, to an input of `shape`."""
    return nasir.load(
        f"network n() {{\n    input x: {shape}\n    return x >> {call} as op\n}}", text=True
    )


def op_cost(ir: IR, policy: CountingPolicy | None = None) -> Totals:
    return count_costs(ir, policy).nodes["op"]


def torch_macs(module: torch.nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() // 2


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- shape rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "call", "message"),
    [
        ("6x4x4", "learned_group_conv(8, 4)", "groups=4 does not divide the 6 input channels"),
        ("8x4x4", "learned_group_conv(8, 2, 3)", "condense=3 does not divide the 8 input channels"),
        ("8x4x4", "learned_group_conv(6, 4)", "groups=4 does not divide out=6"),
        ("16", "learned_group_conv(8, 4)", "expects a feature map CxHxW"),
        ("1", "condensing_linear(8)", "keep=0.5 of 1 input features keeps none of them"),
        ("8x2x2", "condensing_linear(8)", "add `>> flatten` before it"),
        ("8", "condensing_linear(8, keep=1.5)", "less than or equal to 1"),
        ("8", "condensing_linear(8, keep=0.0)", "greater than 0"),
    ],
)
def test_invalid_channel_counts_are_rejected_with_a_clear_message(
    shape: str, call: str, message: str
) -> None:
    with pytest.raises(SpecError) as info:
        one_op(shape, call)
    assert message in info.value.message


def test_condense_defaults_to_groups_as_the_official_condense_factor():
    ir = one_op("16x4x4", "learned_group_conv(8, 4)")
    assert ir.node("op").attrs.condense == 4
    assert ir.node("op").shape == (8, 4, 4)


# ---- costs --------------------------------------------------------------------------------


def test_learned_group_conv_trains_dense_and_deploys_with_one_cth_of_its_connections():
    ir = one_op("32x8x8", "learned_group_conv(16, 4, 8)")
    training, condensed = op_cost(ir), op_cost(ir, CONDENSED)
    assert (training.params, training.macs) == (32 * 16, 32 * 16 * 64)
    assert (condensed.params, condensed.macs) == (32 * 16 // 8, 32 * 16 * 64 // 8)
    assert condensed.muls == condensed.adds == condensed.macs


def test_the_counting_policy_chooses_the_form_from_its_condensed_flag():
    assert CountingPolicy.parse("condensed") == CONDENSED
    ir = one_op("16x2x2", "learned_group_conv(8, 2)")
    assert op_cost(ir, CountingPolicy.parse("all")).params == 16 * 8
    assert op_cost(ir, CountingPolicy.parse("all,condensed")).params == 16 * 8 // 2


def test_condensing_linear_keeps_int_in_times_keep_inputs_when_condensed():
    """Official `CondensingLinear(linear, 0.5)`: int(in * 0.5) inputs, all outputs and biases."""
    ir = one_op("801", "condensing_linear(10)")
    assert op_cost(ir).params == 801 * 10 + 10
    assert op_cost(ir, CONDENSED).params == 400 * 10 + 10
    assert op_cost(ir, CONDENSED).macs == 400 * 10
    no_bias = one_op("100", "condensing_linear(10, keep=0.25, bias=false)")
    assert op_cost(no_bias, CONDENSED).params == 25 * 10


def test_condensing_linear_with_keep_one_is_a_linear_layer():
    full = op_cost(one_op("64", "condensing_linear(10, keep=1.0)"), CONDENSED)
    linear = op_cost(one_op("64", "linear(10)"), CONDENSED)
    assert (full.params, full.macs) == (linear.params, linear.macs)


# ---- lowering -----------------------------------------------------------------------------


def test_ops_lower_to_the_training_modules():
    model = nasir.compile(one_op("12x3x3", "learned_group_conv(8, 4, 2)"))
    layer = model.op
    assert isinstance(layer, LearnedGroupConv)
    assert (layer.in_channels, layer.out_channels) == (12, 8)
    assert (layer.groups, layer.condense_factor) == (4, 2)
    linear = nasir.compile(one_op("12", "condensing_linear(5)")).op
    assert isinstance(linear, torch.nn.Linear) and linear.in_features == 12


# ---- properties against the torch layers --------------------------------------------------


@st.composite
def learned_group_conv_sizes(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    """(in, out, groups, condense, size) satisfying the official asserts."""
    groups = draw(st.integers(1, 6))
    condense = draw(st.integers(1, 6))
    in_channels = math.lcm(groups, condense) * draw(st.integers(1, 3))
    out_channels = groups * draw(st.integers(1, 4))
    return in_channels, out_channels, groups, condense, draw(st.integers(1, 5))


@settings(max_examples=30, deadline=None)
@given(sizes=learned_group_conv_sizes(), seed=st.integers(0, 2**16))
def test_static_costs_equal_the_modules_before_and_after_condensing(
    sizes: tuple[int, int, int, int, int], seed: int
) -> None:
    """Training form = the compiled LearnedGroupConv (params, FlopCounterMode/2); condensed form
    = the CondensedGroupConv built from it after the full condensing schedule."""
    in_channels, out_channels, groups, condense, size = sizes
    ir = one_op(f"{in_channels}x{size}x{size}",
                f"learned_group_conv({out_channels}, {groups}, {condense})")
    assert_static_matches_torch(ir)

    torch.manual_seed(seed)
    layer = nasir.compile(ir).op
    for step in range(11):
        layer.update_progress(step / 10)
    condensed = CondensedGroupConv.from_learned(layer)
    x = torch.randn(1, in_channels, size, size)
    static = op_cost(ir, CONDENSED)
    assert static.params == n_params(condensed)
    assert static.macs == torch_macs(condensed, x)
    torch.testing.assert_close(condensed(x), layer(x))


@settings(max_examples=30, deadline=None)
@given(
    in_features=st.integers(1, 300),
    out_features=st.integers(1, 20),
    keep=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
    bias=st.booleans(),
)
def test_condensing_linear_costs_equal_the_full_and_the_converted_linear(
    in_features: int, out_features: int, keep: float, bias: bool
) -> None:
    kept = int(in_features * keep)
    call = f"condensing_linear({out_features}, keep={keep}, bias={str(bias).lower()})"
    if kept < 1:
        with pytest.raises(SpecError):
            one_op(str(in_features), call)
        return
    ir = one_op(str(in_features), call)
    assert_static_matches_torch(ir)
    converted = torch.nn.Linear(kept, out_features, bias=bias)
    static = op_cost(ir, CONDENSED)
    assert static.params == n_params(converted)
    assert static.macs == torch_macs(converted, torch.randn(1, kept))
