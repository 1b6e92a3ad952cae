"""`verify(ir)`: the structural invariants every IR must keep, checked in linear time.

Backends, cost reports and passes rely on these; after a rewrite they are checked again, so
a broken IR never reaches a backend (the model is torch.fx's `Graph.lint()`). The rules:

- every node's op is registered, its attributes are an instance of the op's `Attrs` model
  and survive a round trip through it, and it has as many tensor inputs as the op takes;
- node ids are scope paths (`stage1/block2/conv`): non-empty parts, each an identifier or a
  digit string; no node id is also a scope path; ids are unique, creation orders too;
- every input exists and was created earlier; the users index is exactly the inputs;
- every scope's nodes form one contiguous run in creation order (one call per block);
- `ir.inputs` are exactly the `input` nodes, in order, and there is at least one;
- the output is set and is a node;
- a shape, where set, equals the op's shape rule applied to the input shapes.
"""

from __future__ import annotations

import re

from nasir.errors import SpecError, shown
from nasir.ir.graph import IR, Node

_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")


class IRError(SpecError):
    """The IR breaks one of the invariants of `verify` (after a pass, usually a bug in it)."""


def verify(ir: IR) -> None:
    """Raise `IRError` at the first node (or scope) that breaks an IR invariant."""
    from nasir.ops import ShapeError, get_op  # nasir.ops imports nasir.ir: import at call time

    nodes = _stored_nodes(ir)
    created: set[str] = set()
    scopes = _ScopeRuns()
    last_order = None
    for node in nodes:
        if last_order is not None and node.order <= last_order:
            _fail(node, f"shares its creation order {node.order} with another node")
        last_order = node.order
        _check_id(node)
        op = get_op(node.op)
        if op is None:
            _fail(node, f"uses unknown op '{shown(node.op)}'")
        _check_attrs(node, op)
        _check_inputs(ir, node, op, created)
        scopes.enter(node)
        if node.shape is not None:
            ins = [ir.node(i).shape for i in node.inputs]
            if any(s is None for s in ins):
                _fail(node, "has a shape but one of its inputs has none")
            try:
                inferred = tuple(op.infer(node.attrs, ins))
            except ShapeError as exc:
                _fail(node, f"no longer fits its inputs: {exc.message}")
            if inferred != tuple(node.shape):
                _fail(node, f"has shape {_fmt(node.shape)} but {node.op} of its inputs gives "
                            f"{_fmt(inferred)}")
        created.add(node.id)
    clash = scopes.paths & created
    if clash:
        name = min(clash)
        _fail(ir.node(name), "is both a node and a scope")
    _check_users(ir, nodes)
    _check_interface(ir, nodes)


def _stored_nodes(ir: IR) -> list[Node]:
    """The nodes as stored (creation order), each under its own id."""
    for key, node in ir._nodes.items():
        if not isinstance(node, Node) or node.id != key:
            held = f"node {shown(str(node.id))}" if isinstance(node, Node) else "no Node"
            raise IRError(f"invalid IR: graph node {shown(str(key))} holds {held}")
    return list(ir._nodes.values())


def _check_users(ir: IR, nodes: list[Node]) -> None:
    """The users index (what `IR.users` answers) lists exactly the nodes reading each node."""
    expected: dict[str, list[str]] = {node.id: [] for node in nodes}
    for node in nodes:
        for src in dict.fromkeys(node.inputs):
            expected[src].append(node.id)
    for node in nodes:
        if ir._users.get(node.id) != expected[node.id]:
            _fail(node, "has graph edges that differ from the inputs of the nodes reading it")
    if len(ir._users) != len(expected):
        raise IRError("invalid IR: the users index holds nodes that are not in the IR")


def _check_id(node: Node) -> None:
    parts = node.id.split("/") if isinstance(node.id, str) else [""]
    if not all(_PART.fullmatch(p) for p in parts):
        _fail(node, "is not a scope path", "parts that are identifiers or digit strings, "
                                           "joined by '/'")


def _check_attrs(node: Node, op) -> None:
    if not isinstance(node.attrs, op.Attrs):
        _fail(node, f"has attributes of type {type(node.attrs).__name__}, not "
                    f"{op.Attrs.__name__} ({node.op}'s model)")
    try:
        again = op.Attrs.model_validate(node.attrs.model_dump())
    except Exception as exc:  # pydantic's ValidationError, or a broken model
        _fail(node, f"has attributes that do not validate: {exc}")
    if again != node.attrs:
        _fail(node, "has attributes that change when validated again")


def _check_inputs(ir: IR, node: Node, op, created: set[str]) -> None:
    if not isinstance(node.inputs, tuple):
        _fail(node, "has inputs that are not a tuple of node ids")
    for i in node.inputs:
        if i not in created:
            _fail(node, f"uses {shown(str(i))}, which " + (
                "comes later in creation order" if i in ir else "does not exist"))
    arity = op.arity
    if (arity is not None and len(node.inputs) != arity) or (arity is None and not node.inputs):
        want = "one or more" if arity is None else str(arity)
        _fail(node, f"has {len(node.inputs)} input(s); {node.op} takes {want}")


def _check_interface(ir: IR, nodes: list[Node]) -> None:
    inputs = [n.id for n in nodes if n.op == "input"]
    if list(ir.inputs) != inputs:
        raise IRError(f"invalid IR: ir.inputs {ir.inputs} differ from its input nodes {inputs}")
    if not inputs:
        raise IRError("invalid IR: the network has no input node")
    if ir.output is None or ir.output not in ir:
        raise IRError(f"invalid IR: the output {ir.output!r} is not a node",
                      expected="ir.output set to the id of the node the network returns")


class _ScopeRuns:
    """Tracks the open scope path while nodes go by in order; a scope that was closed and
    opens again is not contiguous."""

    def __init__(self) -> None:
        self.open: tuple[str, ...] = ()
        self.closed: set[tuple[str, ...]] = set()
        self.paths: set[str] = set()

    def enter(self, node: Node) -> None:
        scope = node.scope
        common = 0
        while common < min(len(scope), len(self.open)) and scope[common] == self.open[common]:
            common += 1
        for depth in range(common + 1, len(self.open) + 1):
            self.closed.add(self.open[:depth])
        for depth in range(common + 1, len(scope) + 1):
            path = scope[:depth]
            if path in self.closed:
                _fail(node, f"reopens scope {'/'.join(path)}: its nodes are not contiguous in "
                            "creation order", "each scope's nodes in one run, as backends emit "
                                              "one call per block")
            self.paths.add("/".join(path))
        self.open = scope


def _fail(node: Node, problem: str, expected: str | None = None) -> None:
    made = f" (made by pass '{node.made_by}')" if getattr(node, "made_by", None) else ""
    raise IRError(f"invalid IR: node {shown(str(node.id))}{made} {problem}", node.loc,
                  expected=expected)


def _fmt(shape) -> str:
    return "x".join(map(str, shape))
