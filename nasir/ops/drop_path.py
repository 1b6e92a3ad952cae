"""NASNet's scheduled drop path (Zoph et al., CVPR 2018): a training-time regulariser that
drops a whole cell branch per sample. It is the identity at inference, so it costs nothing.
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
