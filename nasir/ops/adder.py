"""AdderNet's adder layer (Chen et al., CVPR 2020): Y = -Σ|X - W| in place of a convolution.

Its MACs are the |x - w| accumulations of a same-shaped convolution, so it stands beside
conv layers in `macs`; but it performs no multiplication: each term is one subtraction and
one accumulation (the paper's Table 1 counts AddNN as 0 #Mul and 2x the CNN's #Add).
"""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from nasir.ir.graph import Shape
from nasir.ops.base import DENSE, Cost, Layer, OpDef, spatial
from nasir.ops.conv import SamePaddingAttrs, check_window, window_shape, window_terms
from nasir.ops.registry import register


class AdderAttrs(SamePaddingAttrs):
    out: PositiveInt
    kernel: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt | None = None
    bias: bool = False
    eta: float = Field(0.2, gt=0.0)

    @field_validator("pad", mode="before")
    @classmethod
    def _one_pad(cls, value: object) -> object:
        if isinstance(value, list | tuple | str):  # Adder2d pads every side alike
            raise ValueError('adder takes one pad for every side (an int, or "same")')
        return value


@register
class Adder(OpDef):
    name = "adder"
    fresh_output = True
    Attrs = AdderAttrs
    positional = ("out", "kernel", "stride", "pad")
    width_attr = "out"
    doc = ("adder layer (AdderNet): adder(out, kernel, stride=1, pad=same, bias=false, eta=0.2); "
           "eta scales the adaptive learning rate")
    flop_counter_visible = False  # no conv/matmul inside: FlopCounterMode sees none of it

    def infer(self, a: AdderAttrs, ins: list[Shape]) -> Shape:
        _, h, w = spatial(ins[0], self.name)
        check_window(self.name, h, w, a.kernel, a.pad)
        return (a.out, *window_shape(h, w, a.kernel, a.stride, a.pad))

    def cost(self, a: AdderAttrs, ins: list[Shape], out: Shape) -> Cost:
        per_output, terms = window_terms(ins[0][0], 1, a.kernel, out)
        params = a.out * per_output + (a.out if a.bias else 0)
        return Cost(params=params, macs=terms, muls=0, adds=2 * terms, kind=DENSE)

    def lower(self, a: AdderAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("nasir.layers.adder.Adder2d", (ins[0][0], a.out, a.kernel),
                     {"stride": a.stride, "padding": a.pad, "bias": a.bias, "eta": a.eta})
