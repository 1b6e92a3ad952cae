"""CondenseNet's learned group convolution and condensing classifier, in training and deployed
form (Huang, Liu, van der Maaten, Weinberger, CVPR 2018, arXiv 1711.09224).

Both ops train as dense layers and are pruned by the official `utils.convert_model` for
deployment; these are the training forms, counted with every connection. The deployed forms
are the ops of nasir.ops.condensed, made by the `condense` pass (nasir.passes.condense);
`CountingPolicy(condensed=True)` (`--count condensed`) counts the network after that pass.

- `learned_group_conv(out, groups, condense=groups)`: a 1x1 conv whose G groups each learn to
  read in/C of the input channels (the official `LearnedGroupConv` without its BN and ReLU,
  which are separate nodes in nasir). Training form: in*out weights; condensed form
  (`condensed_conv`, official `CondenseConv`): out*in/C weights and MACs.
- `condensing_linear(out, keep=0.5, bias=true)`: a linear layer that conversion cuts to the
  int(in*keep) input features of largest L1 norm (`CondensingLinear(linear, 0.5)`; the
  official argument is called `drop_rate` but is the fraction *kept*). Training form: a plain
  `linear(out)`; condensed form (`condensed_linear`, official `CondenseLinear`):
  int(in*keep)*out weights (+ out bias).

Deviation: the official converted layer applies its BN and ReLU after selecting in*G/C
channels, so for G != C its BN holds 2*in*G/C parameters instead of 2*in. nasir's preceding
BN/ReLU nodes keep their training-form size; the counts agree whenever G == C, as in every
published configuration.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, PositiveInt, model_validator

from nasir.ir.graph import Shape
from nasir.ops.base import DENSE, Attrs, Cost, Layer, OpDef, ShapeError, numel, spatial
from nasir.ops.linear import Linear, LinearAttrs
from nasir.ops.registry import register


class LearnedGroupConvAttrs(Attrs):
    out: PositiveInt
    groups: PositiveInt
    condense: PositiveInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _condense_defaults_to_groups(cls, data: Any) -> Any:
        """C defaults to G, as the official `condense_factor=None`."""
        if isinstance(data, dict) and data.get("condense") is None and "groups" in data:
            data = {**data, "condense": data["groups"]}
        return data

    @property
    def factor(self) -> int:
        """The condensation factor C (filled from `groups` when not given)."""
        return self.condense or self.groups


def dense_1x1_cost(in_channels: int, out: Shape) -> Cost:
    """A bias-free 1x1 conv reading `in_channels` per output value: 1 MAC = 1 mul + 1 add."""
    macs = numel(out) * in_channels
    return Cost(params=out[0] * in_channels, macs=macs, muls=macs, adds=macs, kind=DENSE)


@register
class LearnedGroupConvOp(OpDef):
    """CondenseNet's learned group convolution, 1x1 only, as the official `LearnedGroupConv`."""

    name = "learned_group_conv"
    fresh_output = True
    Attrs = LearnedGroupConvAttrs
    positional = ("out", "groups", "condense")
    width_attr, groups_attr = "out", "groups"
    doc = (
        "CondenseNet learned group 1x1 conv: learned_group_conv(out, groups, condense=groups); "
        "each of the groups keeps in/condense inputs after condensing"
    )

    def infer(self, a: LearnedGroupConvAttrs, ins: list[Shape]) -> Shape:
        c, h, w = spatial(ins[0], self.name)
        condense = a.factor
        if c % a.groups:
            raise ShapeError(
                f"groups={a.groups} does not divide the {c} input channels "
                "(the official LearnedGroupConv asserts in % groups == 0)",
                (0,),
            )
        if c % condense:
            raise ShapeError(
                f"condense={condense} does not divide the {c} input channels "
                "(after condensing, each group keeps in/condense of them)",
                (0,),
            )
        if a.out % a.groups:
            raise ShapeError(f"groups={a.groups} does not divide out={a.out}")
        return (a.out, h, w)

    def cost(self, a: LearnedGroupConvAttrs, ins: list[Shape], out: Shape) -> Cost:
        return dense_1x1_cost(ins[0][0], out)

    def lower(self, a: LearnedGroupConvAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer(
            "nasir.layers.learned_group_conv.LearnedGroupConv",
            (ins[0][0], a.out, a.groups, a.factor),
        )


_LINEAR = Linear()  # condensing_linear trains, counts and lowers as this layer


class CondensingLinearAttrs(LinearAttrs):
    keep: float = Field(0.5, gt=0.0, le=1.0)


@register
class CondensingLinearOp(OpDef):
    """A classifier that conversion prunes to its `keep` fraction of inputs (official
    `CondensingLinear`); it trains, and lowers, as a plain linear layer."""

    name = "condensing_linear"
    fresh_output = True
    Attrs = CondensingLinearAttrs
    positional = ("out", "keep")
    width_attr = "out"
    doc = (
        "linear layer whose condensed form keeps int(in*keep) inputs (CondenseNet's converted "
        "classifier): condensing_linear(out, keep=0.5, bias=true)"
    )

    def infer(self, a: CondensingLinearAttrs, ins: list[Shape]) -> Shape:
        out = _LINEAR.infer(a, ins)
        if kept_features(ins[0][0], a.keep) < 1:
            raise ShapeError(
                f"keep={a.keep} of {ins[0][0]} input features keeps none of them", (0,)
            )
        return out

    def cost(self, a: CondensingLinearAttrs, ins: list[Shape], out: Shape) -> Cost:
        return _LINEAR.cost(a, ins, out)

    def lower(self, a: CondensingLinearAttrs, ins: list[Shape], out: Shape) -> Layer:
        return _LINEAR.lower(a, ins, out)


def kept_features(in_features: int, keep: float) -> int:
    """Input features a converted classifier keeps: int(in*keep), as `CondensingLinear`."""
    return int(in_features * keep)
