"""nasir's intermediate representation: a NetworkX DAG of primitive op nodes."""

from nasir.ir.graph import IR, Node, Shape, scope_path
from nasir.ir.rewrite import Transformer
from nasir.ir.verify import IRError, verify

__all__ = ["IR", "IRError", "Node", "Shape", "Transformer", "scope_path", "verify"]
