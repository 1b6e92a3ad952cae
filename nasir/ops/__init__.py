"""Primitive ops. Importing this package registers every op module in it, so adding an op
is adding one file here."""

import importlib
import pkgutil

from nasir.ops.base import KINDS, Attrs, Cost, Function, Layer, OpDef, ShapeError, numel
from nasir.ops.registry import get_op, op_names, register, unregister

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["KINDS", "Attrs", "Cost", "Function", "Layer", "OpDef", "ShapeError", "get_op",
           "numel", "op_names", "register", "unregister"]
