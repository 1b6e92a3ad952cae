"""nasir's intermediate representation: a NetworkX DAG of primitive op nodes."""

from nasir.ir.graph import IR, Node, Shape, scope_path

__all__ = ["IR", "Node", "Shape", "scope_path"]
