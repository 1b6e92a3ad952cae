"""nasir's intermediate representation: a DAG of primitive op nodes (`IR.graph` views it
as a networkx graph), its invariants (`verify`) and the rewriting machinery passes use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nasir.ir.graph import IR, Node, Shape, scope_path
from nasir.ir.verify import IRError, verify

if TYPE_CHECKING:
    from nasir.ir.rewrite import Transformer

_LAZY = {"Transformer": "nasir.ir.rewrite"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:  # passes need these, `check` and `stats` do not: keep start-up short
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nasir.ir' has no attribute {name!r}")


__all__ = ["IR", "IRError", "Node", "Shape", "Transformer", "scope_path", "verify"]
