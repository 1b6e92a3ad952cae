"""ShuffleNet's channel shuffle (Zhang et al., CVPR 2018; Ma et al., ECCV 2018): interleave
the channels of `groups` groups, so that the next grouped convolution mixes them."""

from __future__ import annotations

from pydantic import PositiveInt

from nasir.ir.graph import Shape
from nasir.ops.base import Attrs, Function, OpDef, ShapeError, spatial
from nasir.ops.registry import register


class ShuffleAttrs(Attrs):
    groups: PositiveInt


@register
class ChannelShuffle(OpDef):
    """Free: a permutation of channels moves data and computes nothing."""

    name = "channel_shuffle"
    Attrs = ShuffleAttrs
    positional = ("groups",)
    groups_attr = "groups"
    doc = "channel shuffle (ShuffleNet): channel_shuffle(groups); groups must divide channels"

    def infer(self, a: ShuffleAttrs, ins: list[Shape]) -> Shape:
        c, _, _ = spatial(ins[0], self.name)
        if c % a.groups:
            raise ShapeError(f"channel_shuffle groups={a.groups} does not divide the {c} "
                             "input channels", (0,))
        return ins[0]

    def lower(self, a: ShuffleAttrs, ins: list[Shape], out: Shape) -> Function:
        return Function("nasir.layers.functional.channel_shuffle", {"groups": a.groups})
