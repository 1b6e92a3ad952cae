"""Ops that wire tensors together: inputs, identity, zero, add, mul, concat, slices, dropout."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt

from nasir.ir.graph import Shape
from nasir.ops.base import (
    ELTWISE,
    Attrs,
    Cost,
    Function,
    Layer,
    NoAttrs,
    OpDef,
    ShapeError,
    numel,
    spatial,
)
from nasir.ops.registry import register


class InputAttrs(Attrs):
    shape: tuple[PositiveInt, ...] = Field(min_length=1, max_length=3)


@register
class Input(OpDef):
    name = "input"
    Attrs = InputAttrs
    arity = 0
    doc = "a network input (declared with `input x: 3x224x224`)"

    def infer(self, a: InputAttrs, ins: list[Shape]) -> Shape:
        return a.shape

    def lower(self, a: InputAttrs, ins: list[Shape], out: Shape) -> None:
        return None


@register
class Identity(OpDef):
    name = "identity"
    stackable = True
    Attrs = NoAttrs
    doc = "passes its input through"

    def lower(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("torch.nn.Identity")


class DropoutAttrs(Attrs):
    p: float = Field(0.5, ge=0.0, lt=1.0)


@register
class Dropout(OpDef):
    name = "dropout"
    stackable = True
    Attrs = DropoutAttrs
    positional = ("p",)
    doc = "dropout during training: dropout(p=0.5)"

    def lower(self, a: DropoutAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("torch.nn.Dropout", (a.p,))


class ZeroAttrs(Attrs):
    stride: PositiveInt = 1


@register
class Zero(OpDef):
    """The 'none' op of NAS search spaces: zeros, subsampled by `stride`."""

    name = "zero"
    stackable = True
    Attrs = ZeroAttrs
    positional = ("stride",)
    doc = "zeros of the input's shape, subsampled by stride: zero(stride=1)"

    def infer(self, a: ZeroAttrs, ins: list[Shape]) -> Shape:
        c, h, w = spatial(ins[0], self.name)
        return (c, -(-h // a.stride), -(-w // a.stride))

    def lower(self, a: ZeroAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("nasir.layers.wiring.Zero", (a.stride,))


def _same_shapes(op: str, ins: list[Shape]) -> None:
    for i, shape in enumerate(ins[1:], start=1):
        if shape != ins[0]:
            what = "channel counts" if shape[1:] == ins[0][1:] else "shapes"
            raise ShapeError(f"{op} needs equal shapes, but its {what} differ: input 0 is "
                             f"{_fmt(ins[0])}, input {i} is {_fmt(shape)}", (0, i))


def _fmt(shape: Shape) -> str:
    return "x".join(map(str, shape))


@register
class Add(OpDef):
    name = "add"
    stackable = True
    fresh_output = True
    Attrs = NoAttrs
    arity = None
    doc = "elementwise sum of two or more tensors of equal shape (also `a + b`)"

    def infer(self, a: NoAttrs, ins: list[Shape]) -> Shape:
        _same_shapes(self.name, ins)
        return ins[0]

    def cost(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Cost:
        return Cost(adds=(len(ins) - 1) * numel(out), kind=ELTWISE)

    def lower(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Function:
        return Function("nasir.layers.functional.add", infix="+")

    def inplace_inputs(self, a: NoAttrs, arity: int) -> tuple[int, ...]:
        # a + b == b + a exactly, so either of two inputs may be the accumulator; with more,
        # only the first keeps the summation order (float addition is not associative).
        return (0, 1) if arity == 2 else (0,)

    def lower_inplace(self, a: NoAttrs, ins: list[Shape], out: Shape, into: int) -> Function:
        return Function("nasir.layers.functional.add_")


@register
class Mul(OpDef):
    """Elementwise product; the second input may be a Cx1x1 gate (squeeze-and-excitation)."""

    name = "mul"
    stackable = True
    Attrs = NoAttrs
    arity = 2
    doc = "elementwise product, broadcasting a Cx1x1 gate (also `a * b`)"

    def infer(self, a: NoAttrs, ins: list[Shape]) -> Shape:
        x, g = ins
        if g == x or (len(g) == 3 and len(x) == 3 and g[0] == x[0] and g[1:] == (1, 1)):
            return x
        raise ShapeError(f"mul needs equal shapes or a {x[0]}x1x1 gate, got {_fmt(x)} "
                         f"and {_fmt(g)}", (0, 1))

    def cost(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Cost:
        return Cost(muls=numel(out), kind=ELTWISE)

    def lower(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Function:
        return Function("nasir.layers.functional.mul", infix="*")


@register
class Concat(OpDef):
    name = "concat"
    fresh_output = True
    concatenates = True
    Attrs = NoAttrs
    arity = None
    doc = "concatenate along channels, in argument order"

    def infer(self, a: NoAttrs, ins: list[Shape]) -> Shape:
        for i, shape in enumerate(ins):
            spatial(shape, self.name, i)
            if shape[1:] != ins[0][1:]:
                raise ShapeError(f"concat needs equal spatial sizes, but input 0 is "
                                 f"{_fmt(ins[0])} and input {i} is {_fmt(shape)}", (0, i))
        return (sum(s[0] for s in ins), *ins[0][1:])

    def lower(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Function:
        return Function("nasir.layers.functional.concat")


class SliceAttrs(Attrs):
    start: NonNegativeInt = 0
    stop: PositiveInt


@register
class ChannelSlice(OpDef):
    name = "slice"
    Attrs = SliceAttrs
    positional = ("start", "stop")
    channel_attrs = ("start", "stop")
    doc = "channels start..stop-1 (also `x[start:stop]`)"

    def infer(self, a: SliceAttrs, ins: list[Shape]) -> Shape:
        c = ins[0][0]
        if not a.start < a.stop <= c:
            raise ShapeError(f"channel slice {a.start}:{a.stop} is empty or outside the "
                             f"{c} channels of its input", (0,))
        return (a.stop - a.start, *ins[0][1:])

    def lower(self, a: SliceAttrs, ins: list[Shape], out: Shape) -> Function:
        return Function("nasir.layers.functional.channel_slice",
                        {"start": a.start, "stop": a.stop})
