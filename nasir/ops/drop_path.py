"""NASNet's scheduled drop path (Zoph et al., CVPR 2018): a training-time regulariser that
drops a whole cell branch per sample. It is the identity at inference, so it costs nothing.

What `drop_path(p, cell, cells)` lowers to (nasir.layers.drop_path.ScheduledDropPath,
TF-slim nasnet_utils `_apply_drop_path`, version v3): in training mode each sample's branch
is zeroed with probability p * (cell + 1) / cells * progress, where `progress` is a buffer in
[0, 1] that starts at 0 and is set by `set_drop_path_progress(model, step / total_steps)`;
kept samples are divided by the keep probability, so the expectation is unchanged. In eval
mode, or when p = 0, it returns its input unchanged. NASNet specs put one after every cell
operation except `none`, as TF-slim does (not one per residual block).

Against torchvision.ops.StochasticDepth(p, mode): torchvision drops with a fixed p, either
per sample (mode="row", the same mask shape as here) or the whole batch at once
(mode="batch"), and rescales survivors by 1 / (1 - p); it has no schedule. So nasir's
drop path at a given moment of training is StochasticDepth(p_eff, "row") with
p_eff = p * (cell + 1) / cells * progress; both are the identity in eval mode. Until the
progress is set, nasir's drop path drops nothing (p_eff = 0).
"""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from nasir.ir.graph import Shape
from nasir.ops.base import Attrs, Layer, OpDef
from nasir.ops.registry import register


class DropPathAttrs(Attrs):
    p: float = Field(ge=0.0, lt=1.0)
    cell: NonNegativeInt = 0
    cells: PositiveInt = 1

    @model_validator(mode="after")
    def _cell_within_cells(self) -> DropPathAttrs:
        if self.cell >= self.cells:
            raise ValueError(f"cell index {self.cell} must be below cells={self.cells}")
        return self


@register
class DropPath(OpDef):
    """Drop a branch with probability p * (cell+1)/cells * training progress (TF-slim v3)."""

    name = "drop_path"
    Attrs = DropPathAttrs
    positional = ("p", "cell", "cells")
    doc = "scheduled drop path (NASNet), identity at inference: drop_path(p, cell=0, cells=1)"

    def infer(self, a: DropPathAttrs, ins: list[Shape]) -> Shape:
        return ins[0]

    def lower(self, a: DropPathAttrs, ins: list[Shape], out: Shape) -> Layer:
        return Layer("nasir.layers.drop_path.ScheduledDropPath", (a.p, a.cell, a.cells))
