"""Convolutions: `conv` (dense and grouped) and its depthwise alias `dwconv`.

`pad` is an int (every side), `[top, bottom, left, right]`, "same" (the default:
dilation * (kernel - 1) // 2 on every side, PyTorch's size-keeping pad at stride 1 for odd
kernels) or "tf_same" (TensorFlow SAME, resolved from the input size; see nasir.ops.padding).
"""

from __future__ import annotations

from typing import Any

from pydantic import PositiveInt, field_validator, model_validator

from nasir.ir.graph import Shape
from nasir.ops.base import DENSE, Attrs, Cost, Layer, OpDef, ShapeError, numel, spatial, window_out
from nasir.ops.padding import PadValue, normalize_pad, resolve_tf_same, sides
from nasir.ops.registry import register


class PadAttrs(Attrs):
    """Attributes with a `pad`: a list of four sides is stored as a tuple, or as an int when
    the sides agree (so symmetric pads keep PyTorch's own layers)."""

    @field_validator("pad", mode="before", check_fields=False)
    @classmethod
    def _normalize_pad(cls, value: Any) -> Any:
        return normalize_pad(value)


class SamePaddingAttrs(PadAttrs):
    """Attributes with `kernel`, `pad` (and maybe `dilation`): a missing `pad`, or "same",
    keeps the size at stride 1 for odd kernels (PyTorch 'same')."""

    @model_validator(mode="before")
    @classmethod
    def _same_padding(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("pad") in (None, "same"):
            kernel, dilation = data.get("kernel"), data.get("dilation", 1)
            if isinstance(kernel, int) and isinstance(dilation, int):
                data = {**data, "pad": dilation * (kernel - 1) // 2}
        return data


class ConvAttrs(SamePaddingAttrs):
    out: PositiveInt
    kernel: PositiveInt
    stride: PositiveInt = 1
    pad: PadValue | None = None
    dilation: PositiveInt = 1
    groups: PositiveInt = 1
    bias: bool = False


def check_window(op: str, h: int, w: int, kernel: int, pad: int | tuple[int, int, int, int],
                 dilation: int = 1) -> None:
    """A ShapeError unless the (dilated) window fits in the padded input."""
    top, bottom, left, right = sides(pad)
    span = dilation * (kernel - 1) + 1
    if span > h + top + bottom or span > w + left + right:
        raise ShapeError(
            f"{op} window {span}x{span} is larger than its padded input "
            f"{h + top + bottom}x{w + left + right}",
            (0,),
        )


def window_terms(in_channels: int, groups: int, kernel: int, out: Shape) -> tuple[int, int]:
    """(weights per output channel, accumulation terms) of a k x k window layer reading
    `in_channels` in `groups`: the cost rule conv and adder share."""
    per_output = (in_channels // groups) * kernel * kernel
    return per_output, numel(out) * per_output


def window_shape(h: int, w: int, kernel: int, stride: int,
                 pad: int | tuple[int, int, int, int], dilation: int = 1,
                 ceil_mode: bool = False) -> tuple[int, int]:
    """Output (H, W) of a k x k window op (conv, adder, pools): the shared window rule."""
    top, bottom, left, right = sides(pad)
    return (window_out(h, kernel, stride, top, bottom, dilation, ceil_mode),
            window_out(w, kernel, stride, left, right, dilation, ceil_mode))


@register
class Conv(OpDef):
    name = "conv"
    fresh_output = True
    Attrs = ConvAttrs
    positional = ("out", "kernel", "stride", "pad")
    width_attr, groups_attr = "out", "groups"
    doc = ("2-D convolution: conv(out, kernel, stride=1, pad=\"same\", dilation=1, groups=1, "
           "bias=false); pad: int, [top, bottom, left, right], \"same\" or \"tf_same\"")

    def resolve(self, kwargs: dict[str, Any], ins: list[Shape]) -> tuple[str, dict[str, Any]]:
        return self.name, resolve_tf_same(kwargs, ins, self.name)

    def infer(self, a: ConvAttrs, ins: list[Shape]) -> Shape:
        c, h, w = spatial(ins[0], self.name)
        if c % a.groups:
            raise ShapeError(f"groups={a.groups} does not divide the {c} input channels", (0,))
        if a.out % a.groups:
            raise ShapeError(f"groups={a.groups} does not divide out={a.out}")
        check_window(self.name, h, w, a.kernel, a.pad, a.dilation)
        return (a.out, *window_shape(h, w, a.kernel, a.stride, a.pad, a.dilation))

    def cost(self, a: ConvAttrs, ins: list[Shape], out: Shape) -> Cost:
        per_output, macs = window_terms(ins[0][0], a.groups, a.kernel, out)
        params = a.out * per_output + (a.out if a.bias else 0)
        return Cost(params=params, macs=macs, muls=macs, adds=macs, kind=DENSE)

    def lower(self, a: ConvAttrs, ins: list[Shape], out: Shape) -> Layer:
        padded = not isinstance(a.pad, int)
        return Layer(
            "nasir.layers.padding.PaddedConv2d" if padded else "torch.nn.Conv2d",
            (ins[0][0], a.out, a.kernel),
            {
                "stride": a.stride,
                "pad" if padded else "padding": a.pad,
                "dilation": a.dilation,
                "groups": a.groups,
                "bias": a.bias,
            },
        )


class DwConvAttrs(SamePaddingAttrs):
    kernel: PositiveInt
    stride: PositiveInt = 1
    pad: PadValue | None = None
    dilation: PositiveInt = 1
    mult: PositiveInt = 1
    bias: bool = False


@register
class DwConv(OpDef):
    """Depthwise convolution: one k×k filter per input channel (times `mult`)."""

    name = "dwconv"
    Attrs = DwConvAttrs
    positional = ("kernel", "stride", "pad")
    doc = ("depthwise conv: dwconv(kernel, stride=1, pad=\"same\", dilation=1, mult=1, "
           "bias=false)")

    def resolve(self, kwargs: dict[str, Any], ins: list[Shape]) -> tuple[str, dict[str, Any]]:
        a = DwConvAttrs(**resolve_tf_same(kwargs, ins, self.name))
        c = spatial(ins[0], self.name)[0]
        return "conv", {
            "out": c * a.mult,
            "kernel": a.kernel,
            "stride": a.stride,
            "pad": a.pad,
            "dilation": a.dilation,
            "groups": c,
            "bias": a.bias,
        }
