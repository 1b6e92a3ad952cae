"""What an op is: its attribute model, shape rule, cost rule and lowering, in one class.

Adding an op is writing one `OpDef` subclass and decorating it with `@register`; nothing
else in nasir switches on op names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from nasir.ir.graph import Shape


class Attrs(BaseModel):
    """Base for op attribute models: strict types, no unknown fields, immutable, and no
    attribute may hold inf or nan."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              defer_build=True)  # schemas built on first use: fast start-up


class NoAttrs(Attrs):
    pass


class ShapeError(Exception):
    """An op cannot accept its input shapes; `inputs` names the offending input positions."""

    def __init__(self, message: str, inputs: tuple[int, ...] = ()):
        super().__init__(message)
        self.message = message
        self.inputs = inputs


# Cost kinds, so a counting policy can include or exclude them (papers differ).
DENSE, BN, ACT, POOL, ELTWISE, FREE = "dense", "bn", "act", "pool", "eltwise", "free"
KINDS = (DENSE, BN, ACT, POOL, ELTWISE, FREE)


@dataclass(frozen=True)
class Cost:
    """Static cost of one node at batch size 1.

    `macs` counts multiply-accumulates of dense layers (conv, linear, and the |x-w|
    accumulations of adder layers); `muls`, `adds` and `other` (comparisons, exp, ...)
    count the scalar operations actually performed, so an adder layer has macs but no muls.
    """

    params: int = 0
    macs: int = 0
    muls: int = 0
    adds: int = 0
    other: int = 0
    kind: str = FREE


@dataclass(frozen=True)
class Layer:
    """Lower to a module attribute: `cls(*args, **kwargs)`, called on the inputs."""

    cls: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Function:
    """Lower to a stateless call `fn(*inputs, **kwargs)`; `infix` prints it as `a + b`."""

    fn: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    infix: str | None = None


Lowering = Layer | Function | None


def numel(shape: Shape) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


class OpDef:
    """One primitive op. Subclasses set the class attributes and override the rules."""

    name: ClassVar[str]
    Attrs: ClassVar[type[Attrs]] = NoAttrs
    positional: ClassVar[tuple[str, ...]] = ()
    arity: ClassVar[int | None] = 1  # number of tensor inputs; None = one or more
    doc: ClassVar[str] = ""
    # Whether torch's FlopCounterMode sees this op's MACs once lowered (conv and matmul do;
    # custom kernels such as adder layers do not). Used to cross-check static counts.
    flop_counter_visible: ClassVar[bool] = True
    # Channel bookkeeping, so passes that rewrite widths (split, fuse) never switch on op names:
    # the attribute that sets the output channels (conv's `out`), further attributes counted
    # in channels that scale with the width (slice's `start`, `stop`), and the attribute that
    # partitions channels into groups (conv's `groups`).
    width_attr: ClassVar[str | None] = None
    channel_attrs: ClassVar[tuple[str, ...]] = ()
    groups_attr: ClassVar[str | None] = None
    # Whether the op on S tensors stacked along channels equals its S results stacked (bn,
    # activations, pooling, add, flatten, ...: per-channel ops), and whether it joins its
    # inputs' channels (concat): what horizontal fusion of an ensemble (`fuse`) relies on.
    stackable: ClassVar[bool] = False
    concatenates: ClassVar[bool] = False
    # In-place execution (nasir.passes.inplace plans it): `fresh_output` says the lowered op
    # returns a new tensor that aliases no input and that its backward never reads, so a
    # later op may overwrite it (conv, bn, add, concat, pools; not views such as flatten,
    # identities such as dropout in eval, nor ops that save their result, such as relu).
    # `inplace_inputs` are the inputs the op can overwrite with `lower_inplace`.
    fresh_output: ClassVar[bool] = False

    def inplace_inputs(self, attrs: Any, arity: int) -> tuple[int, ...]:
        """The inputs this op can write its result into (none by default)."""
        return ()

    def lower_inplace(self, attrs: Any, ins: list[Shape], out: Shape, into: int) -> Lowering:
        """The lowering that writes the result into input `into` and returns it; the planner
        puts that input first when `into` is not 0."""
        raise NotImplementedError(f"op {self.name} has no in-place lowering")

    def resolve(self, kwargs: dict[str, Any], ins: list[Shape]) -> tuple[str, dict[str, Any]]:
        """Rewrite a call into the op that is stored in the IR (aliases such as dwconv)."""
        return self.name, kwargs

    def infer(self, attrs: Any, ins: list[Shape]) -> Shape:
        return ins[0]

    def cost(self, attrs: Any, ins: list[Shape], out: Shape) -> Cost:
        """Free by default: wiring ops (concat, slices, shifts) move data, not arithmetic."""
        return Cost()

    def lower(self, attrs: Any, ins: list[Shape], out: Shape) -> Lowering:
        raise NotImplementedError(f"op {self.name} has no PyTorch lowering")


def spatial(shape: Shape, op: str, index: int = 0) -> tuple[int, int, int]:
    """(C, H, W) of a feature map, or a ShapeError naming the op."""
    if len(shape) != 3:
        got = (f"a flat vector of {shape[0]} features" if len(shape) == 1
               else f"a {'x'.join(map(str, shape))} tensor")
        raise ShapeError(f"{op} expects a feature map CxHxW, got {got}", (index,))
    return shape  # type: ignore[return-value]


def window_out(
    size: int,
    kernel: int,
    stride: int,
    pad_before: int,
    pad_after: int,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a sliding window (convolution, adder or pooling) along one axis.

    The PyTorch rule, with the padding on each side given separately: floor (or ceil) of
    (padded size - window span) / stride, plus one; in ceil mode the last window must start
    inside the input or its leading padding.
    """
    span = size + pad_before + pad_after - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad_before:
            out -= 1
        return out
    return span // stride + 1


def conv_out(
    size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Output length with the same padding `pad` on both sides (see `window_out`)."""
    return window_out(size, kernel, stride, pad, pad, dilation, ceil_mode)
