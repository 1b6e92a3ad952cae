"""Property tests: DARTS cells, CondenseNet dense blocks and split groups cost what the
compiled module measures, for random genotypes, widths, growth rates and member counts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import nasir
from nasir.testing.checks import assert_static_matches_torch

DARTS_OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
             "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
PROPERTY = settings(max_examples=12, deadline=None)


@st.composite
def darts_genotype_cells(draw):
    """A random DARTS cell: node i+2 takes two ops on two distinct earlier states."""
    ops = []
    for node in range(4):
        inputs = draw(st.lists(st.integers(0, node + 1), min_size=2, max_size=2, unique=True))
        ops += [[draw(st.sampled_from(DARTS_OPS)), i] for i in inputs]
    return ops


def _genotype_text(ops: list) -> str:
    return "[" + ", ".join(f'["{name}", {i}]' for name, i in ops) + "]"


@PROPERTY
@given(ops=darts_genotype_cells(), c=st.sampled_from([4, 6, 8]),
       reduction=st.booleans(), size=st.sampled_from([8, 12]))
def test_darts_cell_static_costs_equal_the_compiled_cell(ops, c, reduction, size):
    text = f"""import "darts.arch"
    network n() {{
        input x: {c}x{size}x{size}
        return darts_cell(x, x, {_genotype_text(ops)}, [2, 3, 4, 5], {c},
                          reduction={str(reduction).lower()})
    }}"""
    ir = nasir.load(text, text=True)
    half = size // 2 if reduction else size
    assert ir.node(ir.output).shape == (4 * c, half, half)
    assert_static_matches_torch(ir)


@PROPERTY
@given(layers=st.integers(1, 3), growth=st.sampled_from([4, 8]),
       groups=st.sampled_from([1, 2, 4]), size=st.sampled_from([4, 8]))
def test_dense_block_static_costs_equal_the_compiled_block(layers, growth, groups, size):
    channels = 2 * growth * groups  # divisible by groups and by the condense factor
    text = f"""import "condensenet.arch"
    network n() {{
        input x: {channels}x{size}x{size}
        return x >> dense_block({layers}, {growth}, group_1x1={groups}, group_3x3={groups},
                                condense={groups})
    }}"""
    ir = nasir.load(text, text=True)
    assert ir.node(ir.output).shape == (channels + layers * growth, size, size)
    assert_static_matches_torch(ir)


@PROPERTY
@given(members=st.integers(1, 4), width=st.integers(2, 8), classes=st.integers(2, 6),
       mode=st.sampled_from(["mean", "softmax_mean", "max"]))
def test_split_group_costs_are_the_sum_of_its_members(members, width, classes, mode):
    text = f"""block member(x, w: int, k: int) {{
        return x >> conv(w, 3) >> bn >> relu >> gap >> flatten >> linear(k)
    }}
    network n() {{
        input x: 3x8x8
        return x >> split(member({width}, {classes}), {members}, mode="{mode}")
    }}"""
    ir = nasir.load(text, text=True)
    report = nasir.stats(ir)
    one = report.scopes["net0"]
    assert report.total.params == members * one.params
    assert report.total.macs == members * one.macs
    assert_static_matches_torch(ir)
