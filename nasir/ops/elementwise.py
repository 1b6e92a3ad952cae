"""Per-element ops: batch norm and activations. Shapes pass through unchanged."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveFloat

from nasir.ir.graph import Shape
from nasir.ops.base import ACT, BN, Attrs, Cost, Layer, NoAttrs, OpDef, numel
from nasir.ops.registry import register


class BnAttrs(Attrs):
    eps: PositiveFloat = 1e-5
    momentum: float = 0.1
    affine: bool = True


@register
class BatchNorm(OpDef):
    name = "bn"
    stackable = True
    fresh_output = True
    Attrs = BnAttrs
    positional = ()
    doc = "batch normalization over channels: bn(eps=1e-5, momentum=0.1, affine=true)"

    def cost(self, a: BnAttrs, ins: list[Shape], out: Shape) -> Cost:
        # At inference BN folds to one multiply and one add per element.
        n = numel(out)
        return Cost(params=2 * out[0] if a.affine else 0, muls=n, adds=n, kind=BN)

    def lower(self, a: BnAttrs, ins: list[Shape], out: Shape) -> Layer:
        cls = "torch.nn.BatchNorm2d" if len(out) == 3 else "torch.nn.BatchNorm1d"
        return Layer(cls, (out[0],), {"eps": a.eps, "momentum": a.momentum, "affine": a.affine})


class _Activation(OpDef):
    """An activation; per-element scalar operations as (muls, adds, other)."""

    torch_cls: str = ""
    per_element: tuple[int, int, int] = (0, 0, 1)
    Attrs = NoAttrs
    stackable = True

    def cost(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Cost:
        n = numel(out)
        muls, adds, other = self.per_element
        return Cost(muls=muls * n, adds=adds * n, other=other * n, kind=ACT)

    def lower(self, a: NoAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer(self.torch_cls)


class _ClampingActivation(_Activation):
    """ReLU and ReLU6: their backward reads only their result, so they may run in place
    (`inplace=True`, as torchvision's ResNets and the official GhostNet do)."""

    def inplace_inputs(self, a: NoAttrs, arity: int) -> tuple[int, ...]:
        return (0,)

    def lower_inplace(self, a: NoAttrs, ins: list[Shape], out: Shape, into: int) -> Layer:
        return Layer(self.torch_cls, (), {"inplace": True})


@register
class ReLU(_ClampingActivation):
    name, torch_cls, doc = "relu", "torch.nn.ReLU", "max(x, 0)"
    per_element = (0, 0, 1)  # one comparison


@register
class ReLU6(_ClampingActivation):
    name, torch_cls, doc = "relu6", "torch.nn.ReLU6", "min(max(x, 0), 6)"
    per_element = (0, 0, 2)


@register
class HardSigmoid(_Activation):
    name, torch_cls, doc = "hardsigmoid", "torch.nn.Hardsigmoid", "relu6(x + 3) / 6"
    per_element = (1, 1, 2)


@register
class HardSwish(_Activation):
    name, torch_cls, doc = "hardswish", "torch.nn.Hardswish", "x * relu6(x + 3) / 6"
    per_element = (2, 1, 2)


@register
class Sigmoid(_Activation):
    name, torch_cls, doc = "sigmoid", "torch.nn.Sigmoid", "1 / (1 + exp(-x))"
    per_element = (0, 1, 2)  # exp and division counted as `other`


@register
class SiLU(_Activation):
    """SiLU (Elfwing et al. 2018), a.k.a. Swish with beta=1 (Ramachandran et al. 2017), the
    activation of EfficientNet: one name only, `silu` (PyTorch's). Counted per element as
    sigmoid's add, exp and division plus the multiply by x."""

    name, torch_cls, doc = "silu", "torch.nn.SiLU", "x * sigmoid(x) (Swish, EfficientNet)"
    per_element = (1, 1, 2)


class GeluAttrs(Attrs):
    approximate: Literal["none", "tanh"] = "none"


@register
class GELU(_Activation):
    """GELU (Hendrycks and Gimpel 2016). Counted per element: exact, x/sqrt(2), 0.5*x and the
    product (3 muls), 1 + erf (1 add), erf (1 other); tanh form, x*x*x (2), 0.044715*x^3,
    sqrt(2/pi)*(.), 0.5*x and the product (6 muls), x + . and 1 + tanh (2 adds), tanh (1)."""

    name, torch_cls = "gelu", "torch.nn.GELU"
    doc = 'x * Phi(x): gelu(approximate="none"|"tanh")'
    Attrs = GeluAttrs
    positional = ("approximate",)
    per_element = (3, 1, 1)

    def cost(self, a: GeluAttrs, ins: list[Shape], out: Shape) -> Cost:
        n = numel(out)
        muls, adds, other = (6, 2, 1) if a.approximate == "tanh" else self.per_element
        return Cost(muls=muls * n, adds=adds * n, other=other * n, kind=ACT)

    def lower(self, a: GeluAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer(self.torch_cls, (), {"approximate": a.approximate})
