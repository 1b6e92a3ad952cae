"""`grouped_linear(out, groups, bias=true)`: G independent linear maps over consecutive slices
of a flat vector (the classifier of S fused ensemble members; see nasir.passes.fuse)."""

from __future__ import annotations

from pydantic import PositiveInt

from nasir.ir.graph import Shape
from nasir.ops.base import DENSE, Attrs, Cost, Layer, OpDef, ShapeError
from nasir.ops.registry import register


class GroupedLinearAttrs(Attrs):
    out: PositiveInt
    groups: PositiveInt
    bias: bool = True


@register
class GroupedLinear(OpDef):
    name = "grouped_linear"
    fresh_output = True
    Attrs = GroupedLinearAttrs
    positional = ("out", "groups")
    width_attr, groups_attr = "out", "groups"
    doc = ("grouped fully connected layer: grouped_linear(out, groups, bias=true); groups "
           "must divide the input features and out")

    def infer(self, a: GroupedLinearAttrs, ins: list[Shape]) -> Shape:
        if len(ins[0]) != 1:
            raise ShapeError("grouped_linear expects a flat vector (add `>> flatten`)", (0,))
        if ins[0][0] % a.groups or a.out % a.groups:
            raise ShapeError(f"groups={a.groups} must divide the {ins[0][0]} input features "
                             f"and out={a.out}", (0,))
        return (a.out,)

    def cost(self, a: GroupedLinearAttrs, ins: list[Shape], out: Shape) -> Cost:
        macs = ins[0][0] // a.groups * a.out
        return Cost(params=macs + (a.out if a.bias else 0), macs=macs, muls=macs, adds=macs,
                    kind=DENSE)

    def lower(self, a: GroupedLinearAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("nasir.layers.grouped.GroupedLinear", (ins[0][0], a.out, a.groups),
                     {"bias": a.bias})
