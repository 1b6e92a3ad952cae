"""CondenseNet's deployed layers: the condensed learned group conv and the condensed classifier
(Huang, Liu, van der Maaten, Weinberger, CVPR 2018, arXiv 1711.09224; official
ShichenLiu/CondenseNet layers.py `CondenseConv`, `CondenseLinear`, `ShuffleLayer`).

The `condense` pass (nasir.passes.condense) turns the training ops of
nasir.ops.learned_group_conv into these; their cost rules are those of the converted network
that the official `utils.convert_model` builds, and what `--count condensed` counts.

- `condensed_conv(out, groups, select)`: index_select of `select` input channels (in*G/C for a
  condensed learned group conv, each group's in/C kept channels one group after another), a
  1x1 conv with `groups` groups, then a channel shuffle of `groups` (official `CondenseConv`
  without its BN and ReLU, which stay separate earlier nodes over all channels in nasir).
  Cost: out*select/groups weights and MACs per pixel.
- `condensed_linear(out, select, bias=true)`: index_select of `select` input features (the
  int(in*keep) that `CondensingLinear` keeps), then a linear layer (official `CondenseLinear`).

Which channels are selected is a buffer of the lowered layer (`index`), learned data like a
weight, not an attribute: a freshly built layer selects the first channels.
"""

from __future__ import annotations

from pydantic import PositiveInt

from nasir.ir.graph import Shape
from nasir.ops.base import DENSE, Attrs, Cost, Layer, OpDef, ShapeError, numel, spatial
from nasir.ops.registry import register


class CondensedConvAttrs(Attrs):
    out: PositiveInt
    groups: PositiveInt
    select: PositiveInt


@register
class CondensedConvOp(OpDef):
    """The deployed learned group conv: select channels, grouped 1x1 conv, shuffle."""

    name = "condensed_conv"
    fresh_output = True
    Attrs = CondensedConvAttrs
    positional = ("out", "groups", "select")
    width_attr, groups_attr = "out", "groups"
    doc = (
        "condensed learned group 1x1 conv (CondenseNet's deployed CondenseConv): "
        "condensed_conv(out, groups, select); select input channels by index, "
        "group conv, channel shuffle"
    )

    def infer(self, a: CondensedConvAttrs, ins: list[Shape]) -> Shape:
        c, h, w = spatial(ins[0], self.name)
        if a.select % a.groups:
            raise ShapeError(f"groups={a.groups} does not divide select={a.select}")
        if a.out % a.groups:
            raise ShapeError(f"groups={a.groups} does not divide out={a.out}")
        if a.select // a.groups > c:
            raise ShapeError(
                f"each of the {a.groups} groups reads select/groups={a.select // a.groups} "
                f"channels, more than the {c} input channels",
                (0,),
            )
        return (a.out, h, w)

    def cost(self, a: CondensedConvAttrs, ins: list[Shape], out: Shape) -> Cost:
        per_output = a.select // a.groups
        macs = numel(out) * per_output
        return Cost(params=a.out * per_output, macs=macs, muls=macs, adds=macs, kind=DENSE)

    def lower(self, a: CondensedConvAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("nasir.layers.condensed.CondensedConv",
                     (ins[0][0], a.out, a.groups, a.select))


class CondensedLinearAttrs(Attrs):
    out: PositiveInt
    select: PositiveInt
    bias: bool = True


@register
class CondensedLinearOp(OpDef):
    """The deployed condensing classifier: select features, then a linear layer."""

    name = "condensed_linear"
    fresh_output = True
    Attrs = CondensedLinearAttrs
    positional = ("out", "select")
    width_attr = "out"
    doc = (
        "condensed classifier (CondenseNet's deployed CondenseLinear): "
        "condensed_linear(out, select, bias=true); select input features by index, linear"
    )

    def infer(self, a: CondensedLinearAttrs, ins: list[Shape]) -> Shape:
        if len(ins[0]) != 1:
            shape = "x".join(map(str, ins[0]))
            raise ShapeError(f"{self.name} expects a flat vector, got a {shape} feature map "
                             "(add `>> flatten` before it)", (0,))
        if a.select > ins[0][0]:
            raise ShapeError(f"select={a.select} is more than the {ins[0][0]} input features",
                             (0,))
        return (a.out,)

    def cost(self, a: CondensedLinearAttrs, ins: list[Shape], out: Shape) -> Cost:
        macs = a.select * a.out
        return Cost(params=macs + (a.out if a.bias else 0), macs=macs, muls=macs, adds=macs,
                    kind=DENSE)

    def lower(self, a: CondensedLinearAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("nasir.layers.condensed.CondensedLinear",
                     (ins[0][0], a.out, a.select), {"bias": a.bias})
