"""`ensemble`: combine the logits of S member networks (SplitNet's inference ensemble)."""

from __future__ import annotations

from typing import Literal

from nasir.ir.graph import Shape
from nasir.ops.base import ELTWISE, Attrs, Cost, Layer, OpDef, ShapeError, numel
from nasir.ops.registry import register


class EnsembleAttrs(Attrs):
    mode: Literal["mean", "softmax_mean", "max", "softmax_max"] = "mean"


@register
class Ensemble(OpDef):
    """Mean of logits (SplitNet's default), mean of softmax probabilities, or the maximum.

    Zhao et al., "Divide and Co-training" (arXiv 2011.14660), `SplitNet._get_ensemble_output`.
    """

    name = "ensemble"
    Attrs = EnsembleAttrs
    arity = None
    doc = ("combine S flat logit vectors of equal shape: "
           "ensemble(*logits, mode=\"mean\"|\"softmax_mean\"|\"max\"|\"softmax_max\")")

    def infer(self, a: EnsembleAttrs, ins: list[Shape]) -> Shape:
        for i, shape in enumerate(ins):
            if len(shape) != 1:
                raise ShapeError(f"ensemble combines flat logit vectors, but input {i} is a "
                                 f"{'x'.join(map(str, shape))} feature map", (i,))
            if shape != ins[0]:
                raise ShapeError(f"ensemble needs equal shapes, but input 0 has {ins[0][0]} "
                                 f"logits and input {i} has {shape[0]}", (0, i))
        return ins[0]

    def cost(self, a: EnsembleAttrs, ins: list[Shape], out: Shape) -> Cost:
        """Scalar work at batch 1: softmax is S*n exps and divisions plus S*(n-1) adds;
        the mean is (S-1)*n adds and n scalings; the max is (S-1)*n comparisons."""
        s, n = len(ins), numel(out)
        muls = adds = other = 0
        if a.mode.startswith("softmax_"):
            other += 2 * s * n
            adds += s * (n - 1)
        if a.mode.endswith("max"):
            other += (s - 1) * n
        else:
            adds += (s - 1) * n
            muls += n if s > 1 else 0
        return Cost(muls=muls, adds=adds, other=other, kind=ELTWISE)

    def lower(self, a: EnsembleAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("nasir.layers.ensemble.Ensemble", (a.mode,))
