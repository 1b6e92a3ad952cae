"""NASNet-A cells (Zoph et al., CVPR 2018) as specs/nasnet.arch writes them after TF-slim's
`nasnet_utils.py`: output widths, factorized reduction, drop path and counts against torch."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import nasir
from nasir.ir.graph import IR
from nasir.layers.drop_path import ScheduledDropPath, set_drop_path_progress
from nasir.layers.shift import Shift

# One cell on two inputs made from the network input: `prev` at the input's size and `cur`
# either at the same size or, with scale=2, at half of it (so prev needs a factorized
# reduction, as after a reduction cell).
PROBE = """
import "nasnet.arch"

network probe(kind: str = "normal", filters: int = 8, cur_c: int = 6, prev_c: int = 5,
              scale: int = 1, raw: bool = false, drop: float = 0.0) {
    input x: 3x16x16
    prev = x >> conv(prev_c, 3) as make_prev
    cur = prev >> conv(cur_c, 3, stride=scale) as make_cur
    if kind == "normal" {
        y = cur >> nasnet_a_normal(prev, filters, raw_prev=raw, drop=drop, cell=3,
                                   cells=5) as cell
    } else {
        y = cur >> nasnet_a_reduction(prev, filters, raw_prev=raw, drop=drop, cell=3,
                                      cells=5) as cell
    }
    return y
}
"""


def probe(size: int = 16, **params: object) -> IR:
    return nasir.load(PROBE, text=True, network="probe", input=f"3x{size}x{size}", **params)


def cell_output(ir: IR) -> tuple[int, ...]:
    return ir.node(ir.output).shape


def torch_counts(ir: IR, scope: str) -> tuple[int, int]:
    """Parameters and FlopCounterMode MACs of one scope's module, built on the meta device."""
    with torch.device("meta"):
        model = nasir.compile(ir).eval()
        inputs = model.example_inputs(batch=1, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    params = sum(p.numel() for p in model.get_submodule(scope).parameters())
    return params, sum(counter.get_flop_counts()[f"NasirModel.{scope}"].values()) // 2


def test_normal_cell_outputs_6f_channels_at_the_input_size() -> None:
    assert cell_output(probe(kind="normal", filters=8)) == (48, 16, 16)


def test_reduction_cell_outputs_4f_channels_at_half_the_input_size() -> None:
    assert cell_output(probe(kind="reduction", filters=8, size=15)) == (32, 8, 8)


def test_prev_of_twice_the_size_goes_through_a_factorized_reduction() -> None:
    """_reduce_prev_layer: two 1x1 convs to F/2 on the even and the shifted grid, odd F on
    path 2, then BN; the cell still outputs 6F at cur's size."""
    ir = probe(kind="normal", filters=7, scale=2, size=15)
    path1 = ir.node("cell/reduce_prev_layer/factorized_reduction/path1_conv")
    path2 = ir.node("cell/reduce_prev_layer/factorized_reduction/path2_conv")
    assert (path1.shape, path2.shape) == ((3, 8, 8), (4, 8, 8))
    assert cell_output(ir) == (42, 8, 8)


def test_prev_of_another_width_gets_a_relu_1x1_conv_and_bn() -> None:
    ir = probe(kind="normal", filters=8, prev_c=5)
    ops = [ir.node(f"cell/reduce_prev_layer/{n}").op for n in ("relu", "prev_1x1", "prev_bn")]
    assert ops == ["relu", "conv", "bn"]


def test_raw_prev_of_another_width_is_reduced_before_the_concat() -> None:
    """TF-slim prev_layer=None (the first CIFAR cell): h1 is cur itself, and
    _combine_unused_states gives it a 1x1 conv + BN so that the cell is still 6F wide."""
    ir = probe(kind="normal", filters=8, cur_c=24, raw=True)
    assert "cell/reduce_prev_layer" not in ir.scope_kinds
    assert ir.node("cell/reduction_1/path_conv").shape == (8, 16, 16)
    assert cell_output(ir) == (48, 16, 16)


def test_cells_put_a_drop_path_on_every_branch_but_none() -> None:
    """Normal: 10 ops, 2 of them `none`; reduction: 1 `none`."""
    for kind, expected in (("normal", 8), ("reduction", 9)):
        ir = probe(kind=kind, drop=0.4)
        paths = [n for n in ir.nodes() if n.op == "drop_path"]
        assert len(paths) == expected
        assert {(n.attrs.p, n.attrs.cell, n.attrs.cells) for n in paths} == {(0.4, 3, 5)}


def test_drop_path_leaves_the_static_counts_unchanged() -> None:
    with_paths, without = nasir.stats(probe(drop=0.4)).total, nasir.stats(probe()).total
    assert (with_paths.params, with_paths.macs) == (without.params, without.macs)


def test_drop_path_is_the_identity_in_eval_mode() -> None:
    model = nasir.compile(probe(drop=0.4))
    set_drop_path_progress(model, 1.0)
    x = torch.randn(16, 3, 16, 16)
    seen: list[bool] = []
    for m in model.modules():
        if isinstance(m, ScheduledDropPath):
            m.register_forward_hook(lambda mod, inp, out: seen.append(out is inp[0]))
    with torch.no_grad():
        model.eval()(x)
        assert seen and all(seen)
        seen.clear()
        model.train()(x)
    assert not all(seen), "in training, late in the schedule, drop path must act"


def test_cifar_drop_path_numbers_cells_like_tf_slim() -> None:
    """18 normal + 2 reduction cells = 20; the reductions are cells 6 and 13."""
    ir = nasir.load("nasnet_a_cifar")
    cell_of = {n.id.split("/")[1]: n.attrs.cell for n in ir.nodes() if n.op == "drop_path"}
    assert {n.attrs.cells for n in ir.nodes() if n.op == "drop_path"} == {20}
    assert (cell_of["cell_0"], cell_of["reduction_cell_0"], cell_of["reduction_cell_1"],
            cell_of["cell_17"]) == (0, 6, 13, 19)
    assert all(n.attrs.p == pytest.approx(0.4) for n in ir.nodes() if n.op == "drop_path")


def test_shift_is_tf_slims_pad_bottom_right_and_crop_top_left() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    expected = torch.nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
    assert torch.equal(Shift(1)(x), expected)
    # Strided 1x1 sampling after the shift reads the odd pixels the first path skips.
    assert torch.equal(Shift(1)(x)[:, :, ::2, ::2], x[:, :, 1::2, 1::2])


def test_small_cifar_nasnet_trains_on_real_tensors() -> None:
    """The whole CIFAR assembly (stem, reductions, drop path, head) at a toy size."""
    ir = nasir.load("nasnet_a_cifar", input="3x8x8", num_cells=3, filters=4)
    model = nasir.compile(ir).train()
    assert set_drop_path_progress(model, 0.5) == 3 * 8 + 2 * 9
    out = model(torch.randn(2, 3, 8, 8))
    out.sum().backward()
    assert out.shape == (2, 10)


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(["normal", "reduction"]), filters=st.integers(2, 24),
       cur_c=st.integers(1, 32), prev_c=st.integers(1, 32), scale=st.sampled_from([1, 2]),
       raw=st.booleans(), size=st.integers(3, 17))
def test_a_cells_static_counts_equal_the_compiled_modules(kind: str, filters: int, cur_c: int,
                                                          prev_c: int, scale: int, raw: bool,
                                                          size: int) -> None:
    ir = probe(size=size, kind=kind, filters=filters, cur_c=cur_c, prev_c=prev_c, scale=scale,
               raw=raw, drop=0.3)
    channels, h, _ = cell_output(ir)
    cur_h = ir.node("make_cur").shape[1]
    assert channels == (6 if kind == "normal" else 4) * filters
    assert h == (cur_h if kind == "normal" else -(-cur_h // 2))
    static = nasir.stats(ir).scopes["cell"]
    assert (static.params, static.macs) == torch_counts(ir, "cell")
