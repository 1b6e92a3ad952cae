"""Convolutions: `conv` (dense and grouped) and its depthwise alias `dwconv`."""

from __future__ import annotations

from typing import Any

from pydantic import NonNegativeInt, PositiveInt, model_validator

from nasir.ir.graph import Shape
from nasir.ops.base import DENSE, Attrs, Cost, Layer, OpDef, ShapeError, conv_out, numel, spatial
from nasir.ops.registry import register


class SamePaddingAttrs(Attrs):
    """Attributes with `kernel`, `pad` (and maybe `dilation`): a missing `pad` keeps the size
    at stride 1 for odd kernels (PyTorch 'same')."""

    @model_validator(mode="before")
    @classmethod
    def _same_padding(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("pad") is None:
            kernel, dilation = data.get("kernel"), data.get("dilation", 1)
            if isinstance(kernel, int) and isinstance(dilation, int):
                data = {**data, "pad": dilation * (kernel - 1) // 2}
        return data


class ConvAttrs(SamePaddingAttrs):
    out: PositiveInt
    kernel: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt | None = None
    dilation: PositiveInt = 1
    groups: PositiveInt = 1
    bias: bool = False


def check_window(op: str, h: int, w: int, kernel: int, pad: int, dilation: int = 1) -> None:
    span = dilation * (kernel - 1) + 1
    if span > h + 2 * pad or span > w + 2 * pad:
        raise ShapeError(
            f"{op} window {span}x{span} is larger than its padded input "
            f"{h + 2 * pad}x{w + 2 * pad}",
            (0,),
        )


@register
class Conv(OpDef):
    name = "conv"
    Attrs = ConvAttrs
    positional = ("out", "kernel", "stride", "pad")
    doc = "2-D convolution: conv(out, kernel, stride=1, pad=same, dilation=1, groups=1, bias=false)"

    def infer(self, a: ConvAttrs, ins: list[Shape]) -> Shape:
        c, h, w = spatial(ins[0], self.name)
        if c % a.groups:
            raise ShapeError(f"groups={a.groups} does not divide the {c} input channels", (0,))
        if a.out % a.groups:
            raise ShapeError(f"groups={a.groups} does not divide out={a.out}")
        check_window(self.name, h, w, a.kernel, a.pad, a.dilation)
        return (
            a.out,
            conv_out(h, a.kernel, a.stride, a.pad, a.dilation),
            conv_out(w, a.kernel, a.stride, a.pad, a.dilation),
        )

    def cost(self, a: ConvAttrs, ins: list[Shape], out: Shape) -> Cost:
        per_output = (ins[0][0] // a.groups) * a.kernel * a.kernel
        macs = numel(out) * per_output
        params = a.out * per_output + (a.out if a.bias else 0)
        return Cost(params=params, macs=macs, muls=macs, adds=macs, kind=DENSE)

    def lower(self, a: ConvAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer(
            "torch.nn.Conv2d",
            (ins[0][0], a.out, a.kernel),
            {
                "stride": a.stride,
                "padding": a.pad,
                "dilation": a.dilation,
                "groups": a.groups,
                "bias": a.bias,
            },
        )


class DwConvAttrs(Attrs):
    kernel: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt | None = None
    dilation: PositiveInt = 1
    mult: PositiveInt = 1
    bias: bool = False


@register
class DwConv(OpDef):
    """Depthwise convolution: one k×k filter per input channel (times `mult`)."""

    name = "dwconv"
    Attrs = DwConvAttrs
    positional = ("kernel", "stride", "pad")
    doc = "depthwise conv: dwconv(kernel, stride=1, pad=same, dilation=1, mult=1, bias=false)"

    def resolve(self, kwargs: dict[str, Any], ins: list[Shape]) -> tuple[str, dict[str, Any]]:
        a = DwConvAttrs(**kwargs)
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
