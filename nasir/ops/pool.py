"""Pooling: windowed max/avg pooling and global average pooling."""

from __future__ import annotations

from typing import Any

from pydantic import NonNegativeInt, PositiveInt, model_validator

from nasir.ir.graph import Shape
from nasir.ops.base import (
    POOL,
    Attrs,
    Cost,
    Layer,
    NoAttrs,
    OpDef,
    ShapeError,
    conv_out,
    numel,
    spatial,
)
from nasir.ops.conv import check_window
from nasir.ops.registry import register


class PoolAttrs(Attrs):
    kernel: PositiveInt
    stride: PositiveInt | None = None
    pad: NonNegativeInt = 0
    ceil: bool = False
    count_pad: bool = True

    @model_validator(mode="before")
    @classmethod
    def _stride_defaults_to_kernel(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("stride") is None and "kernel" in data:
            data = {**data, "stride": data["kernel"]}
        return data


class _Pool(OpDef):
    Attrs = PoolAttrs
    positional = ("kernel", "stride", "pad")

    def infer(self, a: PoolAttrs, ins: list[Shape]) -> Shape:
        c, h, w = spatial(ins[0], self.name)
        check_window(self.name, h, w, a.kernel, a.pad)
        if a.pad * 2 > a.kernel:
            raise ShapeError(f"{self.name} pad={a.pad} exceeds half the kernel {a.kernel}")
        return (
            c,
            conv_out(h, a.kernel, a.stride, a.pad, ceil_mode=a.ceil),
            conv_out(w, a.kernel, a.stride, a.pad, ceil_mode=a.ceil),
        )


@register
class MaxPool(_Pool):
    name = "maxpool"
    doc = "max pooling: maxpool(kernel, stride=kernel, pad=0, ceil=false)"

    def cost(self, a: PoolAttrs, ins: list[Shape], out: Shape) -> Cost:
        return Cost(other=numel(out) * (a.kernel * a.kernel - 1), kind=POOL)

    def lower(self, a: PoolAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer(
            "torch.nn.MaxPool2d",
            (a.kernel,),
            {"stride": a.stride, "padding": a.pad, "ceil_mode": a.ceil},
        )


@register
class AvgPool(_Pool):
    name = "avgpool"
    doc = "average pooling: avgpool(kernel, stride=kernel, pad=0, ceil=false, count_pad=true)"

    def cost(self, a: PoolAttrs, ins: list[Shape], out: Shape) -> Cost:
        n = numel(out)
        return Cost(adds=n * (a.kernel * a.kernel - 1), muls=n, kind=POOL)

    def lower(self, a: PoolAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer(
            "torch.nn.AvgPool2d",
            (a.kernel,),
            {
                "stride": a.stride,
                "padding": a.pad,
                "ceil_mode": a.ceil,
                "count_include_pad": a.count_pad,
            },
        )


@register
class GlobalAvgPool(OpDef):
    name = "gap"
    Attrs = NoAttrs
    doc = "global average pooling to Cx1x1"

    def infer(self, a: NoAttrs, ins: list[Shape]) -> Shape:
        c, _, _ = spatial(ins[0], self.name)
        return (c, 1, 1)

    def cost(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Cost:
        c, h, w = ins[0]
        return Cost(adds=c * (h * w - 1), muls=c, kind=POOL)

    def lower(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("torch.nn.AdaptiveAvgPool2d", (1,))
