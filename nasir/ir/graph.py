"""The IR: a DAG whose nodes are primitive ops with validated attributes.

Each node has an id equal to its scope path (`stage2/block3/ghost1/primary`), an op name,
a pydantic attribute model, *ordered* inputs (concat order matters), the spec location that
created it and, once inferred, its output shape (channels first, no batch dimension).
Nodes also keep their creation order, a topological order in which every scope's nodes are
contiguous; backends rely on that to emit one call per block.

The IR stores nodes and their users itself, in creation order, so reading it never sorts
and loading networkx is not on the path of `check` or `stats`; `IR.graph` gives a
`networkx.DiGraph` of it for graph algorithms.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pydantic import BaseModel

from nasir.errors import SourceLoc

if TYPE_CHECKING:
    import networkx as nx

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


def _with_order(node: Node, order: int) -> Node:
    """`node` with creation order `order` (a cheap `dataclasses.replace` of one field)."""
    if node.order == order:
        return node
    new = object.__new__(Node)
    new.__dict__.update(node.__dict__)
    new.__dict__["order"] = order
    return new


def scope_path(scope: tuple[str, ...] | list[str], name: str) -> str:
    return "/".join([*scope, name])


class IR:
    """A network: nodes, the inputs it takes, the node it returns, and its spec parameters."""

    def __init__(self, name: str, params: dict | None = None, source: str | None = None):
        self.name = name
        self.params: dict = dict(params or {})
        self.source = source
        self.inputs: list[str] = []
        self.output: str | None = None
        self.scope_kinds: dict[str, str] = {}  # scope path -> template name ("basic", ...)
        self._nodes: dict[str, Node] = {}  # in creation order
        self._users: dict[str, list[str]] = {}  # node -> the nodes reading it, in order
        self._next_order = 0

    # -- building
    def add(self, node: Node) -> Node:
        """Add a node after all existing ones; its inputs must already exist."""
        if node.id in self._nodes:
            raise ValueError(f"duplicate node id {node.id}")
        users = self._users
        missing = [i for i in node.inputs if i not in users]
        if missing:
            raise ValueError(f"node {node.id} uses unknown inputs {missing}")
        node = _with_order(node, self._next_order)
        self._next_order += 1
        self._nodes[node.id] = node
        users[node.id] = []
        for src in dict.fromkeys(node.inputs):
            users[src].append(node.id)
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
            missing = [i for i in new.inputs if i not in self._nodes]
            if missing:
                raise ValueError(f"node {node_id} uses unknown inputs {missing}")
            later = [i for i in new.inputs if self.node(i).order >= old.order]
            if later:
                raise ValueError(f"node {node_id} uses inputs {later} that are not earlier")
            for src in dict.fromkeys(old.inputs):
                self._users[src].remove(node_id)
            for src in dict.fromkeys(new.inputs):
                insort(self._users[src], node_id, key=lambda n: self._nodes[n].order)
        self._nodes[node_id] = new
        return new

    # -- reading
    def node(self, node_id: str) -> Node:
        return self._nodes[node_id]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def nodes(self) -> list[Node]:
        """All nodes in creation order (a topological order)."""
        return list(self._nodes.values())

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self._nodes.values()))

    def users(self, node_id: str) -> list[str]:
        """The nodes that read `node_id`, in creation order."""
        return list(self._users[node_id])

    @property
    def graph(self) -> nx.DiGraph:
        """A networkx snapshot: node ids with the `Node` as attribute "node", an edge per
        input. Changing it does not change the IR."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from((node_id, {"node": node}) for node_id, node in self._nodes.items())
        graph.add_edges_from((src, dst) for dst, node in self._nodes.items()
                             for src in node.inputs)
        return graph

    def copy(self) -> IR:
        other = IR(self.name, self.params, self.source)
        other._nodes = dict(self._nodes)
        other._users = {node_id: list(users) for node_id, users in self._users.items()}
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
