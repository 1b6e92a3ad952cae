"""silu, gelu and channel_shuffle: equal to their torch references, counted honestly,
shape-checked, and lowered alike by nasir.compile and by generated Python source."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

import nasir
from nasir.backends.python_source import to_python
from nasir.errors import SpecError
from nasir.ops import get_op


def shufflenet_v2_channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet V2's channel_shuffle (Ma et al., ECCV 2018), as published."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, -1, height, width)


def _spec(body: str, shape: str = "12x5x5") -> str:
    return f"network t() {{\n  input x: {shape}\n  return x >> {body} as op\n}}\n"


def _both_backends(body: str, shape: str = "12x5x5") -> tuple[torch.nn.Module, torch.nn.Module]:
    ir = nasir.load(_spec(body, shape), text=True)
    module = types.ModuleType("generated")
    exec(compile(to_python(ir), "<generated>", "exec"), module.__dict__)
    return nasir.compile(ir).eval(), module.build().eval()


def _node(body: str, shape: str = "12x5x5"):
    ir = nasir.load(_spec(body, shape), text=True)
    return next(n for n in ir.nodes() if n.id == "op")


@pytest.mark.parametrize("body,reference", [
    ("silu", F.silu),
    ("gelu", F.gelu),
    ('gelu(approximate="tanh")', lambda x: F.gelu(x, approximate="tanh")),
    ("channel_shuffle(3)", lambda x: shufflenet_v2_channel_shuffle(x, 3)),
    ("channel_shuffle(4)", lambda x: shufflenet_v2_channel_shuffle(x, 4)),
    ("channel_shuffle(4)", torch.nn.ChannelShuffle(4)),
])
def test_ops_equal_their_references_in_both_backends(body: str, reference) -> None:
    x = torch.randn(2, 12, 5, 5)
    for model in _both_backends(body):
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_gelu_forms_differ() -> None:
    """The attribute reaches the layer: exact and tanh GELU are different functions."""
    x = torch.linspace(-4, 4, 12 * 25).view(1, 12, 5, 5)
    exact, _ = _both_backends("gelu")
    tanh, _ = _both_backends('gelu(approximate="tanh")')
    assert not torch.equal(exact(x), tanh(x))


def test_channel_shuffle_interleaves_groups() -> None:
    """Output channel k is input channel (k % g) * (C / g) + k // g."""
    c, g = 12, 3
    x = torch.arange(c, dtype=torch.float32).view(1, c, 1, 1).expand(1, c, 2, 2)
    model, _ = _both_backends(f"channel_shuffle({g})", f"{c}x2x2")
    order = model(x)[0, :, 0, 0].tolist()
    assert order == [(k % g) * (c // g) + k // g for k in range(c)]


def test_channel_shuffle_exports() -> None:
    model, _ = _both_backends("channel_shuffle(3)")
    x = torch.randn(2, 12, 5, 5)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.parametrize("body,per_element", [
    ("silu", (1, 1, 2)),
    ("gelu", (3, 1, 1)),
    ('gelu(approximate="tanh")', (6, 2, 1)),
])
def test_activation_costs(body: str, per_element: tuple[int, int, int]) -> None:
    node = _node(body)
    cost = get_op(node.op).cost(node.attrs, [(12, 5, 5)], node.shape)
    n = 12 * 5 * 5
    assert (cost.muls, cost.adds, cost.other) == tuple(k * n for k in per_element)
    assert cost.kind == "act" and cost.params == 0 and cost.macs == 0


def test_channel_shuffle_is_free() -> None:
    node = _node("channel_shuffle(4)")
    cost = get_op(node.op).cost(node.attrs, [(12, 5, 5)], node.shape)
    assert (cost.params, cost.macs, cost.muls, cost.adds, cost.other) == (0, 0, 0, 0, 0)
    assert cost.kind == "free"


@pytest.mark.parametrize("body,shape,needle", [
    ("channel_shuffle(5)", "12x5x5", "does not divide the 12"),
    ("channel_shuffle(0)", "12x5x5", "groups"),
    ("channel_shuffle(2)", "12", "feature map"),
    ('gelu(approximate="fast")', "12x5x5", "approximate"),
    ("silu(1)", "12x5x5", "positional"),
])
def test_bad_calls_are_spec_errors(body: str, shape: str, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        nasir.load(_spec(body, shape), text=True)
    assert needle in str(err.value)


@pytest.mark.parametrize("act,cls", [
    ("relu", torch.nn.ReLU), ("relu6", torch.nn.ReLU6), ("silu", torch.nn.SiLU),
    ("hardswish", torch.nn.Hardswish), ("gelu", torch.nn.GELU),
])
def test_squeeze_excite_takes_its_inner_activation(act: str, cls: type) -> None:
    spec = ('import "std.arch"\nnetwork t() {\n  input x: 8x4x4\n'
            f'  return x >> squeeze_excite(2, act="{act}") as se\n}}\n')
    model = nasir.compile(nasir.load(spec, text=True))
    acts = [type(m) for m in model.modules()
            if type(m) in (torch.nn.ReLU, torch.nn.ReLU6, torch.nn.SiLU, torch.nn.Hardswish,
                           torch.nn.GELU)]
    assert acts == [cls]


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_no_attribute_holds_inf_or_nan(value: float) -> None:
    from pydantic import ValidationError

    from nasir.ops import Attrs

    class Scale(Attrs):
        factor: float = 1.0

    assert Scale(factor=2.5).factor == 2.5
    with pytest.raises(ValidationError):
        Scale(factor=value)
    with pytest.raises(ValidationError):
        get_op("bn").Attrs(momentum=value)
