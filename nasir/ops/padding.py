"""Window padding shared by conv, dwconv, adder and the pools: one int for every side, four
sides `[top, bottom, left, right]`, or TensorFlow's "SAME" (`"tf_same"`), which `resolve`
turns into explicit numbers from the input size so that the IR always holds numbers.

The IR stores an int when all four sides agree (such a node lowers to PyTorch's own layers,
unchanged) and a 4-tuple otherwise (lowered to `nasir.layers.padding`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from nasir.ir.graph import Shape
from nasir.ops.base import spatial

NonNeg = Annotated[int, Field(ge=0)]
Pad4 = tuple[NonNeg, NonNeg, NonNeg, NonNeg]
PadValue = NonNeg | Pad4
TF_SAME = "tf_same"
PAD_FORMS = ('an int (every side), a list [top, bottom, left, right] or "tf_same" '
             "(TensorFlow SAME, computed from the input size)")


def normalize_pad(value: Any) -> Any:
    """A list or tuple of four becomes a tuple, or an int when all sides agree. Anything else
    is returned for the attribute model to accept (an int) or reject with `PAD_FORMS`."""
    if isinstance(value, list | tuple):
        if len(value) != 4:
            raise ValueError(f"pad needs 4 values [top, bottom, left, right], got {len(value)}")
        value = tuple(value)
        if not all(type(v) is int and v >= 0 for v in value):
            raise ValueError("pad [top, bottom, left, right] needs non-negative integers")
        return value[0] if len(set(value)) == 1 else value
    if isinstance(value, str):
        raise ValueError(f"pad must be {PAD_FORMS}")
    return value


def sides(pad: int | tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a stored pad."""
    return (pad, pad, pad, pad) if isinstance(pad, int) else pad


def tf_same(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis: the output is ceil(size / stride), and the
    padding needed for it goes half before and the odd pixel after (TF `nn_ops` rule)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_tf_same(kwargs: dict[str, Any], ins: list[Shape], op: str,
                    stride_default: str | None = None) -> dict[str, Any]:
    """Replace `pad="tf_same"` in a call's raw arguments by the explicit pads for its input.

    Left unchanged when kernel, stride or dilation are not plain ints: the attribute model
    then reports those. `stride_default` names the attribute a missing stride copies (pools).
    """
    if kwargs.get("pad") != TF_SAME:
        return kwargs
    kernel = kwargs.get("kernel")
    stride = kwargs.get("stride")
    if stride is None:
        stride = kwargs.get(stride_default) if stride_default else 1
    dilation = kwargs.get("dilation", 1)
    if not all(type(v) is int and v > 0 for v in (kernel, stride, dilation)):
        return kwargs
    _, h, w = spatial(ins[0], op)
    top, bottom = tf_same(h, kernel, stride, dilation)
    left, right = tf_same(w, kernel, stride, dilation)
    return {**kwargs, "pad": normalize_pad([top, bottom, left, right])}
