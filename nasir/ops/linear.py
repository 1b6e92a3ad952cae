"""Fully connected layer and the ops that reshape into it."""

from __future__ import annotations

from pydantic import PositiveInt

from nasir.ir.graph import Shape
from nasir.ops.base import (
    DENSE,
    Attrs,
    Cost,
    Function,
    Layer,
    NoAttrs,
    OpDef,
    ShapeError,
    numel,
)
from nasir.ops.registry import register


class LinearAttrs(Attrs):
    out: PositiveInt
    bias: bool = True


@register
class Linear(OpDef):
    name = "linear"
    fresh_output = True
    Attrs = LinearAttrs
    positional = ("out",)
    width_attr = "out"
    doc = "fully connected layer on a flat vector: linear(out, bias=true)"

    def infer(self, a: LinearAttrs, ins: list[Shape]) -> Shape:
        if len(ins[0]) != 1:
            shape = "x".join(map(str, ins[0]))
            raise ShapeError(
                f"linear expects a flat vector, got a {shape} feature map "
                "(add `>> flatten` before it)",
                (0,),
            )
        return (a.out,)

    def cost(self, a: LinearAttrs, ins: list[Shape], out: Shape) -> Cost:
        macs = ins[0][0] * a.out
        return Cost(
            params=macs + (a.out if a.bias else 0), macs=macs, muls=macs, adds=macs, kind=DENSE
        )

    def lower(self, a: LinearAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("torch.nn.Linear", (ins[0][0], a.out), {"bias": a.bias})


@register
class Flatten(OpDef):
    name = "flatten"
    stackable = True
    Attrs = NoAttrs
    doc = "CxHxW feature map to a flat vector of C*H*W features"

    def infer(self, a: NoAttrs, ins: list[Shape]) -> Shape:
        return (numel(ins[0]),)

    def lower(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Function:
        return Function("torch.flatten", {"start_dim": 1})
