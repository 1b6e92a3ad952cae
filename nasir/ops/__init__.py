"""Primitive ops. Importing this package registers every op nasir knows."""

from nasir.ops import conv, elementwise, linear, pool, wiring  # noqa: F401  (registration)
from nasir.ops.base import KINDS, Attrs, Cost, Function, Layer, OpDef, ShapeError, numel
from nasir.ops.registry import get_op, op_names, register

__all__ = ["KINDS", "Attrs", "Cost", "Function", "Layer", "OpDef", "ShapeError", "get_op",
           "numel", "op_names", "register"]
