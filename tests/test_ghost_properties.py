"""Properties of the Ghost module and Ghost bottleneck of specs/ghostnet.arch.

For random small shapes and hyperparameters: nasir's static params/MACs equal what the
compiled PyTorch module measures (`sum(p.numel())`, FlopCounterMode / 2), and both equal a
closed-form count written from the official code's structure (huawei-noah/
Efficient-AI-Backbones, ghostnet_pytorch/ghostnet.py; papers.md §1), so a spec that is
self-consistent but differs from GhostNet still fails.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nasir
from nasir.ir.graph import IR
from nasir.testing.checks import measure

SETTINGS = settings(max_examples=25, deadline=None)
channels = st.integers(1, 32)
sizes = st.integers(4, 16)
strides = st.sampled_from([1, 2])
dw_kernels = st.sampled_from([1, 3, 5])


def probe(c: int, size: int, call: str) -> IR:
    """A one-block network on a c x size x size input, built from spec text."""
    return nasir.load(f"""
    import "ghostnet.arch"
    network probe() {{
        input x: {c}x{size}x{size}
        return x >> {call}
    }}""", text=True, network="probe")


def module_call(out: int, ratio: int, k: int, dw: int, stride: int, relu: bool) -> str:
    return (f"ghost_module({out}, ratio={ratio}, k={k}, dw={dw}, stride={stride}, "
            f"relu={'true' if relu else 'false'})")


def bottleneck_call(mid: int, out: int, k: int, stride: int, se: float) -> str:
    return f"ghost_bottleneck({mid}, {out}, k={k}, stride={stride}, se={se})"


# ---- closed-form counts from the official code -------------------------------------------
def make_divisible(v: float, divisor: int) -> int:
    """The official `_make_divisible(v, divisor)` (min_value = divisor)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_out(size: int, k: int, stride: int) -> int:
    return (size + 2 * (k // 2) - k) // stride + 1


def conv_bn(c_in: int, c_out: int, k: int, groups: int, size_out: int) -> tuple[int, int]:
    """(params, MACs) of a bias-free conv followed by BN (gamma and beta)."""
    per_output = c_in // groups * k * k
    return c_out * per_output + 2 * c_out, c_out * per_output * size_out ** 2


def ghost_module_cost(c_in: int, out: int, size: int, ratio: int = 2, k: int = 1, dw: int = 3,
                      stride: int = 1) -> tuple[int, int, int]:
    """GhostModule: primary conv to ceil(out/ratio), depthwise cheap op x (ratio - 1)."""
    init = math.ceil(out / ratio)
    size_out = conv_out(size, k, stride)
    p1, m1 = conv_bn(c_in, init, k, 1, size_out)
    p2, m2 = conv_bn(init, init * (ratio - 1), dw, init, size_out)
    return p1 + p2, m1 + m2, size_out


def ghost_bottleneck_cost(c_in: int, mid: int, out: int, size: int, k: int, stride: int,
                          se: float) -> tuple[int, int]:
    """GhostBottleneck: ghost1, [dw stride + BN], [SE], ghost2, shortcut."""
    params, macs, size_mid = ghost_module_cost(c_in, mid, size)
    if stride > 1:
        size_mid = conv_out(size_mid, k, stride)
        p, m = conv_bn(mid, mid, k, mid, size_mid)
        params, macs = params + p, macs + m
    if se > 0:
        reduced = make_divisible(mid * se, 4)
        params += 2 * mid * reduced + reduced + mid  # conv_reduce and conv_expand, with bias
        macs += 2 * mid * reduced
    p, m, _ = ghost_module_cost(mid, out, size_mid)
    params, macs = params + p, macs + m
    if not (c_in == out and stride == 1):
        size_out = conv_out(size, k, stride)
        p1, m1 = conv_bn(c_in, c_in, k, c_in, size_out)
        p2, m2 = conv_bn(c_in, out, 1, 1, size_out)
        params, macs = params + p1 + p2, macs + m1 + m2
    return params, macs


def static_totals(ir: IR) -> tuple[int, int]:
    total = nasir.stats(ir, policy="paper").total
    return total.params, total.macs


# ---- Ghost module ----------------------------------------------------------------------
@SETTINGS
@given(c=channels, out=channels, ratio=st.integers(2, 4), k=st.sampled_from([1, 3]),
       dw=dw_kernels, stride=strides, relu=st.booleans(), size=sizes)
def test_ghost_module_static_costs_equal_compiled_module_and_official_formula(
    c: int, out: int, ratio: int, k: int, dw: int, stride: int, relu: bool, size: int,
):
    ir = probe(c, size, module_call(out, ratio, k, dw, stride, relu))
    m = measure(ir)
    assert m.static_params == m.torch_params
    assert m.static_macs == m.torch_macs
    params, macs, size_out = ghost_module_cost(c, out, size, ratio, k, dw, stride)
    assert static_totals(ir) == (params, macs)
    assert ir.node(ir.output).shape == (out, size_out, size_out)


@SETTINGS
@given(c=channels, out=channels, ratio=st.integers(2, 4), dw=dw_kernels, size=sizes)
def test_ghost_module_slices_the_concat_to_out_only_when_it_overshoots(
    c: int, out: int, ratio: int, dw: int, size: int,
):
    ir = probe(c, size, module_call(out, ratio, 1, dw, 1, True))
    ops = [n.op for n in ir.nodes()]
    overshoot = math.ceil(out / ratio) * ratio > out
    assert ("slice" in ops) == overshoot
    assert ops[-1] == ("slice" if overshoot else "concat")
    module = nasir.compile(ir).eval()
    with torch.no_grad():
        y = module(torch.randn(1, c, size, size))
    assert tuple(y.shape) == (1, out, size, size)


# ---- Ghost bottleneck ------------------------------------------------------------------
@SETTINGS
@given(c=channels, same_width=st.booleans(), mid=channels, out=channels, k=dw_kernels,
       stride=strides, se=st.sampled_from([0.0, 0.25]), size=sizes)
def test_ghost_bottleneck_static_costs_equal_compiled_module_and_official_formula(
    c: int, same_width: bool, mid: int, out: int, k: int, stride: int, se: float, size: int,
):
    out = c if same_width else out
    ir = probe(c, size, bottleneck_call(mid, out, k, stride, se))
    m = measure(ir)
    assert m.static_params == m.torch_params
    assert m.static_macs == m.torch_macs
    assert static_totals(ir) == ghost_bottleneck_cost(c, mid, out, size, k, stride, se)


@SETTINGS
@given(c=channels, same_width=st.booleans(), mid=channels, out=channels, k=dw_kernels,
       stride=strides, se=st.sampled_from([0.0, 0.25]), size=sizes)
def test_ghost_bottleneck_shortcut_is_identity_iff_same_width_and_stride_1(
    c: int, same_width: bool, mid: int, out: int, k: int, stride: int, se: float, size: int,
):
    out = c if same_width else out
    ir = probe(c, size, bottleneck_call(mid, out, k, stride, se))
    scopes = ir.scope_kinds
    assert ("ghost_bottleneck/shortcut" in scopes) == (c != out or stride != 1)
    assert ("ghost_bottleneck/se" in scopes) == (se > 0)
    assert ("ghost_bottleneck/conv_dw" in ir) == (stride > 1)
    size_out = conv_out(size, k, stride)
    assert ir.node(ir.output).shape == (out, size_out, size_out)
