"""Pooling: windowed max/avg pooling and global average pooling.

`pad` is an int (every side), `[top, bottom, left, right]` or "tf_same" (TensorFlow SAME,
resolved from the input size). Max pooling never picks a padded pixel; average pooling
counts padded zeros in the divisor only when count_pad=true (TensorFlow SAME excludes them).
"""

from __future__ import annotations

from typing import Any

from pydantic import PositiveInt, model_validator

from nasir.ir.graph import Shape
from nasir.ops.base import (
    POOL,
    Cost,
    Layer,
    NoAttrs,
    OpDef,
    ShapeError,
    numel,
    spatial,
)
from nasir.ops.conv import PadAttrs, check_window, window_shape
from nasir.ops.padding import PadValue, resolve_tf_same
from nasir.ops.registry import register


class PoolAttrs(PadAttrs):
    kernel: PositiveInt
    stride: PositiveInt | None = None
    pad: PadValue = 0
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

    def resolve(self, kwargs: dict[str, Any], ins: list[Shape]) -> tuple[str, dict[str, Any]]:
        return self.name, resolve_tf_same(kwargs, ins, self.name, stride_default="kernel")

    def infer(self, a: PoolAttrs, ins: list[Shape]) -> Shape:
        c, h, w = spatial(ins[0], self.name)
        check_window(self.name, h, w, a.kernel, a.pad)
        if isinstance(a.pad, int):
            if a.pad * 2 > a.kernel:  # PyTorch's limit for its own pooling layers
                raise ShapeError(f"{self.name} pad={a.pad} exceeds half the kernel {a.kernel}")
        else:
            if a.ceil:
                raise ShapeError(f"{self.name} ceil=true needs the same pad on every side, "
                                 f"got pad={list(a.pad)}")
            if max(a.pad) >= a.kernel:  # a window of padding alone has no pixel to pool
                raise ShapeError(f"{self.name} pad={list(a.pad)}: every side must be below "
                                 f"the kernel {a.kernel}")
        return (c, *window_shape(h, w, a.kernel, a.stride, a.pad, ceil_mode=a.ceil))


@register
class MaxPool(_Pool):
    name = "maxpool"
    fresh_output = True
    stackable = True
    doc = ("max pooling: maxpool(kernel, stride=kernel, pad=0, ceil=false); "
           "pad: int, [top, bottom, left, right] or \"tf_same\"")

    def cost(self, a: PoolAttrs, ins: list[Shape], out: Shape) -> Cost:
        return Cost(other=numel(out) * (a.kernel * a.kernel - 1), kind=POOL)

    def lower(self, a: PoolAttrs, ins: list[Shape], out: Shape) -> Layer:
        if not isinstance(a.pad, int):
            return Layer("nasir.layers.padding.PaddedMaxPool2d", (a.kernel, a.stride, a.pad))
        return Layer(
            "torch.nn.MaxPool2d",
            (a.kernel,),
            {"stride": a.stride, "padding": a.pad, "ceil_mode": a.ceil},
        )


@register
class AvgPool(_Pool):
    name = "avgpool"
    fresh_output = True
    stackable = True
    doc = ("average pooling: avgpool(kernel, stride=kernel, pad=0, ceil=false, count_pad=true); "
           "pad: int, [top, bottom, left, right] or \"tf_same\"")

    def cost(self, a: PoolAttrs, ins: list[Shape], out: Shape) -> Cost:
        n = numel(out)
        return Cost(adds=n * (a.kernel * a.kernel - 1), muls=n, kind=POOL)

    def lower(self, a: PoolAttrs, ins: list[Shape], out: Shape) -> Layer:
        if not isinstance(a.pad, int):
            return Layer("nasir.layers.padding.PaddedAvgPool2d", (a.kernel, a.stride, a.pad),
                         {"count_include_pad": a.count_pad})
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
    fresh_output = True
    stackable = True
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
