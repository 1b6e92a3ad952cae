"""The IR: a `networkx.DiGraph` whose nodes are primitive ops with validated attributes.

Each node has an id equal to its scope path (`stage2/block3/ghost1/primary`), an op name,
a pydantic attribute model, *ordered* inputs (concat order matters), the spec location that
created it and, once inferred, its output shape (channels first, no batch dimension).
Nodes also keep their creation order, a topological order in which every scope's nodes are
contiguous; backends rely on that to emit one call per block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import networkx as nx
from pydantic import BaseModel

from nasir.errors import SourceLoc

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Node:
    """One primitive op application."""

    id: str
    op: str
    attrs: BaseModel
    inputs: tuple[str, ...]
    loc: SourceLoc | None = None
    shape: Shape | None = None
    order: int = 0
    made_by: str | None = None  # the pass that created this node (None: the spec itself)

    @property
    def scope(self) -> tuple[str, ...]:
        """The enclosing scopes, outermost first (the id without its last part)."""
        return tuple(self.id.split("/")[:-1])

    @property
    def name(self) -> str:
        return self.id.rsplit("/", 1)[-1]


def scope_path(scope: tuple[str, ...] | list[str], name: str) -> str:
    return "/".join([*scope, name])


class IR:
    """A network: nodes, the inputs it takes, the node it returns, and its spec parameters."""

    def __init__(self, name: str, params: dict | None = None, source: str | None = None):
        self.graph = nx.DiGraph()
        self.name = name
        self.params: dict = dict(params or {})
        self.source = source
        self.inputs: list[str] = []
        self.output: str | None = None
        self.scope_kinds: dict[str, str] = {}  # scope path -> template name ("basic", ...)
        self._next_order = 0

    # -- building
    def add(self, node: Node) -> Node:
        """Add a node after all existing ones; its inputs must already exist."""
        if node.id in self.graph:
            raise ValueError(f"duplicate node id {node.id}")
        missing = [i for i in node.inputs if i not in self.graph]
        if missing:
            raise ValueError(f"node {node.id} uses unknown inputs {missing}")
        node = replace(node, order=self._next_order)
        self._next_order += 1
        self.graph.add_node(node.id, node=node)
        for src in node.inputs:
            self.graph.add_edge(src, node.id)
        if node.op == "input":
            self.inputs.append(node.id)
        return node

    def update(self, node_id: str, **changes) -> Node:
        """Replace fields of a node (shape, attrs); inputs and order stay consistent."""
        old = self.node(node_id)
        if {"id", "order"} & set(changes):
            raise ValueError(f"node {node_id}: id and order cannot change; add a new node")
        new = replace(old, **changes)
        if new.inputs != old.inputs:
            missing = [i for i in new.inputs if i not in self.graph]
            if missing:
                raise ValueError(f"node {node_id} uses unknown inputs {missing}")
            later = [i for i in new.inputs if self.node(i).order >= old.order]
            if later:
                raise ValueError(f"node {node_id} uses inputs {later} that are not earlier")
            for src in set(old.inputs):
                self.graph.remove_edge(src, node_id)
            for src in new.inputs:
                self.graph.add_edge(src, node_id)
        self.graph.nodes[node_id]["node"] = new
        return new

    # -- reading
    def node(self, node_id: str) -> Node:
        return self.graph.nodes[node_id]["node"]

    def __contains__(self, node_id: str) -> bool:
        return node_id in self.graph

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def nodes(self) -> list[Node]:
        """All nodes in creation order (a topological order)."""
        return sorted((d["node"] for _, d in self.graph.nodes(data=True)), key=lambda n: n.order)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    def users(self, node_id: str) -> list[str]:
        return sorted(self.graph.successors(node_id), key=lambda n: self.node(n).order)

    def copy(self) -> IR:
        other = IR(self.name, self.params, self.source)
        other.graph = self.graph.copy()
        other.inputs = list(self.inputs)
        other.output = self.output
        other.scope_kinds = dict(self.scope_kinds)
        other._next_order = self._next_order
        return other

    def verify(self) -> None:
        """Raise `nasir.ir.verify.IRError` if an IR invariant is broken (see that module)."""
        from nasir.ir.verify import verify

        verify(self)

    def signature(self) -> list[tuple]:
        """Structure without locations: equal signatures mean equal networks."""
        return [(n.id, n.op, n.attrs.model_dump(), n.inputs, n.shape) for n in self.nodes()] + [
            ("output", self.output)
        ]
