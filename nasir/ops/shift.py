"""A one-pixel spatial shift, the second path of NASNet's factorized reduction.

TF-slim's `factorized_reduction` pads a zero row and column at the bottom/right and crops the
top/left, so that its strided 1x1 average pool samples the odd pixels the first path skips.
"""

from __future__ import annotations

from pydantic import PositiveInt

from nasir.ir.graph import Shape
from nasir.ops.base import Attrs, Layer, OpDef, ShapeError, spatial
from nasir.ops.registry import register


class ShiftAttrs(Attrs):
    pixels: PositiveInt = 1


@register
class Shift(OpDef):
    name = "shift"
    Attrs = ShiftAttrs
    positional = ("pixels",)
    doc = "move content up and left by `pixels`, zero-filling bottom/right: shift(pixels=1)"

    def infer(self, a: ShiftAttrs, ins: list[Shape]) -> Shape:
        _, h, w = spatial(ins[0], self.name)
        if a.pixels >= min(h, w):
            raise ShapeError(f"shift by {a.pixels} pixels empties a {h}x{w} feature map", (0,))
        return ins[0]

    def lower(self, a: ShiftAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("nasir.layers.shift.Shift", (a.pixels,))
