"""Asymmetric and TensorFlow "SAME" padding of conv, dwconv and the pools.

References are computed here, independently of nasir: TF's published SAME rule for the pads,
explicit F.pad + an unpadded torch op for convolution, and brute-force loops over windows
for pooling (max and average over the real pixels only, or average including zeros).
"""

from __future__ import annotations

import itertools
import math
import types

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import nasir
from nasir.backends.python_source import to_python
from nasir.errors import SpecError
from nasir.ops import get_op
from nasir.ops.base import window_out
from nasir.ops.padding import tf_same

SIZES = (7, 8)  # odd and even
KERNELS = (1, 3, 5, 7)
STRIDES = (1, 2)


def tf_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding (tf.nn docs): out = ceil(in / s), the extra pixel after."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _net(body: str, c: int, size: int) -> str:
    return f"network t() {{\n  input x: {c}x{size}x{size}\n  return x >> {body} as op\n}}\n"


def _compile(body: str, c: int, size: int) -> torch.nn.Module:
    return nasir.compile(nasir.load(_net(body, c, size), text=True)).eval()


def _node(body: str, c: int, size: int):
    ir = nasir.load(_net(body, c, size), text=True)
    return next(n for n in ir.nodes() if n.id == "op")


def _windows(size: int, k: int, s: int, before: int, out: int):
    """Per output position, the input indices its window covers (possibly outside)."""
    return [range(i * s - before, i * s - before + k) for i in range(out)]


def brute_pool(x: torch.Tensor, k: int, s: int, pad: tuple[int, int, int, int],
               kind: str) -> torch.Tensor:
    """Pool x (N,C,H,W) by explicit loops; `kind` is max, avg_real or avg_zeros."""
    top, bottom, left, right = pad
    h, w = x.shape[-2:]
    oh, ow = (h + top + bottom - k) // s + 1, (w + left + right - k) // s + 1
    out = torch.empty(*x.shape[:2], oh, ow, dtype=x.dtype)
    for i, rows in enumerate(_windows(h, k, s, top, oh)):
        for j, cols in enumerate(_windows(w, k, s, left, ow)):
            real = [(r, c) for r in rows for c in cols if 0 <= r < h and 0 <= c < w]
            vals = torch.stack([x[:, :, r, c] for r, c in real], dim=-1)
            if kind == "max":
                out[:, :, i, j] = vals.max(dim=-1).values
            elif kind == "avg_real":
                out[:, :, i, j] = vals.mean(dim=-1)
            else:
                out[:, :, i, j] = vals.sum(dim=-1) / (k * k)
    return out


@pytest.mark.parametrize("size,k,s", itertools.product(SIZES, KERNELS, STRIDES))
def test_tf_same_conv_equals_explicit_pad_then_conv(size: int, k: int, s: int) -> None:
    torch.manual_seed(size * 100 + k * 10 + s)
    model = _compile(f'conv(4, {k}, stride={s}, pad="tf_same", bias=true)', 3, size)
    conv = model.op
    top, bottom = tf_pads(size, k, s)
    x = torch.randn(2, 3, size, size)
    expected = F.conv2d(F.pad(x, (top, bottom, top, bottom)), conv.weight, conv.bias, stride=s)
    with torch.no_grad():
        got = model(x)
    assert got.shape[-1] == math.ceil(size / s)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # The IR holds explicit numbers: an int when symmetric, else (top, bottom, left, right).
    pad = _node(f'conv(4, {k}, stride={s}, pad="tf_same")', 3, size).attrs.pad
    assert pad == (top if top == bottom else (top, bottom, top, bottom))
    assert isinstance(conv, torch.nn.Conv2d)  # state_dict keys stay weight/bias
    assert (type(conv) is torch.nn.Conv2d) == (top == bottom)


@pytest.mark.parametrize("size,k,s", itertools.product(SIZES, (3, 5, 7), STRIDES))
def test_tf_same_dilated_depthwise_conv(size: int, k: int, s: int) -> None:
    torch.manual_seed(k + s)
    model = _compile(f'dwconv({k}, stride={s}, dilation=2, pad="tf_same")', 4, size + 8)
    top, bottom = tf_pads(size + 8, k, s, 2)
    x = torch.randn(1, 4, size + 8, size + 8)
    expected = F.conv2d(F.pad(x, (top, bottom, top, bottom)), model.op.weight, None,
                        stride=s, dilation=2, groups=4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size,k,s", itertools.product(SIZES, (1, 3, 5), STRIDES))
@pytest.mark.parametrize("kind", ["max", "avg_real", "avg_zeros"])
def test_tf_same_pools_equal_brute_force(size: int, k: int, s: int, kind: str) -> None:
    op = {"max": "maxpool", "avg_real": "avgpool", "avg_zeros": "avgpool"}[kind]
    extra = {"avg_real": ", count_pad=false", "avg_zeros": ", count_pad=true"}.get(kind, "")
    model = _compile(f'{op}({k}, {s}, pad="tf_same"{extra})', 2, size)
    top, bottom = tf_pads(size, k, s)
    x = torch.randn(1, 2, size, size) - 3.0  # all negative: zero padding would win a max
    with torch.no_grad():
        got = model(x)
    expected = brute_pool(x, k, s, (top, bottom, top, bottom), kind)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pad", [[0, 1, 2, 0], [2, 0, 0, 1], [1, 1, 0, 2]])
@pytest.mark.parametrize("kind", ["max", "avg_real", "avg_zeros"])
def test_explicit_four_side_pads(pad: list[int], kind: str) -> None:
    op = "maxpool" if kind == "max" else "avgpool"
    extra = {"avg_real": ", count_pad=false", "avg_zeros": ", count_pad=true"}.get(kind, "")
    model = _compile(f"{op}(3, 2, pad={pad}{extra})", 2, 7)
    x = torch.randn(1, 2, 7, 7) - 3.0
    with torch.no_grad():
        torch.testing.assert_close(model(x), brute_pool(x, 3, 2, tuple(pad), kind))
    conv = _compile(f"conv(3, 3, stride=2, pad={pad})", 2, 7)
    top, bottom, left, right = pad
    expected = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.op.weight, stride=2)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), expected)


def test_symmetric_lists_store_an_int_and_keep_torch_layers() -> None:
    assert _node("conv(4, 3, pad=[1, 1, 1, 1])", 3, 8).attrs.pad == 1
    model = _compile("maxpool(3, 2, pad=[1, 1, 1, 1])", 3, 8)
    assert type(model.op) is torch.nn.MaxPool2d
    assert _node('conv(4, 3, pad="same")', 3, 8).attrs.pad == 1


def test_shapes_and_costs_follow_the_window_rule() -> None:
    node = _node("conv(4, 3, stride=2, pad=[0, 2, 1, 0])", 3, 8)
    # H: (8 + 0 + 2 - 3) // 2 + 1 = 4; W: (8 + 1 + 0 - 3) // 2 + 1 = 4
    assert node.shape == (4, 4, 4)
    node = _node("conv(4, 3, stride=1, pad=[0, 2, 1, 0])", 3, 8)
    assert node.shape == (4, 8 + 2 - 3 + 1, 8 + 1 - 3 + 1)
    cost = get_op("conv").cost(node.attrs, [(3, 8, 8)], node.shape)
    assert cost.macs == 4 * 8 * 7 * 3 * 9


@pytest.mark.parametrize("body,needle", [
    ('conv(4, 3, pad="valid")', "tf_same"),
    ("conv(4, 3, pad=[1, 2])", "4 values"),
    ("conv(4, 3, pad=[1, 2, -1, 0])", "non-negative integers"),
    ('maxpool(3, 2, pad=[0, 1, 0, 1], ceil=true)', "ceil=true"),
    ("maxpool(3, 2, pad=[0, 3, 0, 1])", "below the kernel"),
    ('adder(4, 3, pad="tf_same")', "one pad"),
])
def test_bad_pads_are_spec_errors(body: str, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        nasir.load(_net(body, 3, 8), text=True)
    assert needle in str(err.value)


def test_generated_source_and_export_handle_asymmetric_pads() -> None:
    body = 'conv(4, 3, stride=2, pad="tf_same")'
    spec = (
        "network t() {\n  input x: 3x8x8\n"
        f"  a = x >> {body} as c\n"
        '  b = a >> maxpool(3, 2, pad="tf_same") as m\n'
        '  return b >> avgpool(3, 2, pad="tf_same", count_pad=false) as p\n}\n'
    )
    ir = nasir.load(spec, text=True)
    module = types.ModuleType("generated")
    exec(compile(to_python(ir), "<generated>", "exec"), module.__dict__)
    generated = module.build().eval()
    compiled = nasir.compile(ir).eval()
    generated.load_state_dict(compiled.state_dict())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), compiled(x), rtol=0, atol=0)
    exported = torch.export.export(compiled, (x,))
    torch.testing.assert_close(exported.module()(x), compiled(x))


@given(size=st.integers(1, 300), k=st.integers(1, 9), s=st.integers(1, 4), d=st.integers(1, 3))
def test_tf_same_keeps_ceil_size_over_stride_with_the_odd_pixel_after(
        size: int, k: int, s: int, d: int) -> None:
    before, after = tf_same(size, k, s, d)
    assert (before, after) == tf_pads(size, k, s, d)
    assert before <= after <= before + 1
    assert window_out(size, k, s, before, after, d) == math.ceil(size / s)
    # The last window reaches past the input only where the first one had to start early.
    assert window_out(size, k, s, before, after - 1, d) < math.ceil(size / s) or after == 0
