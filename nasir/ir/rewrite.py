"""Rebuild-style rewriting: `Transformer` visits an IR in creation order and builds a new one.

The model is torch.fx's `Transformer`: the input IR is never mutated; each visited node is
copied, replaced by new nodes, or deleted, and every later use of a replaced node is
remapped to its replacement. New nodes get validated attributes (through the op's pydantic
model), an inferred shape, the replaced node's spec location and the name of the pass that
made them (`Node.made_by`). `splice_block` replaces a node by a block elaborated from an
`.arch` spec, so a module's structure has one source, the language. The result is verified.

    class ReluToRelu6(Transformer):
        def visit_relu(self, node):
            return self.emit("relu6", {}, self.inputs(node), node.name)

    new_ir = ReluToRelu6(ir).transform()
"""

from __future__ import annotations

import contextvars
import math
import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from nasir.errors import Note, SourceLoc, SpecError, shown
from nasir.gcpause import without_gc
from nasir.ir.graph import IR, Node, Shape, scope_path

# The name of the pass `nasir.transform` is running: the default `made_by` of new nodes.
ACTIVE_PASS: contextvars.ContextVar[str | None] = contextvars.ContextVar("nasir_active_pass",
                                                                         default=None)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")  # a NAME, or a numeric label (`as 0`)
_SAFE_STR = re.compile(r"[A-Za-z0-9_ .,:;+\-*/=<>()\[\]]*")
_SPLICE_NETWORK = "nasir_splice"


class Transformer:
    """Rebuild `ir` node by node; subclasses override `visit` or define `visit_<op>`.

    A visit returns the new node that now carries the visited node's value (`self.copy(node)`
    by default, or the last of the nodes it emitted), or None to delete the node: allowed
    only when no kept node and not the output uses it.
    """

    name: str | None = None  # the pass name recorded in `made_by` (default: the running pass)

    def __init__(self, ir: IR, name: str | None = None):
        self.source = ir
        self.name = name or self.name or ACTIVE_PASS.get() or type(self).__name__
        self.out = IR(ir.name, ir.params, ir.source)
        self.out.scope_kinds = dict(ir.scope_kinds)
        self.current: Node | None = None
        self._env: dict[str, str | None] = {}  # source id -> new id (None: deleted)
        self._reshaped: set[str] = set()  # new ids whose shape differs from their source's
        self._blocks: dict[str, IR] = {}  # elaborated splice wrappers, by their text

    # -- driving
    @without_gc
    def transform(self) -> IR:
        """The rewritten IR, verified; raises `SpecError` naming this pass and the node."""
        for node in self.source.nodes():
            self.current = node
            try:
                result = self.visit(node)
            except SpecError as err:
                raise self._blame(err, node) from None
            except Exception as exc:  # a bug in the pass: still a clear error, never a trace
                raise SpecError(f"pass '{self.name}' failed at node {shown(node.id)}: "
                                f"{type(exc).__name__}: {exc}", node.loc) from exc
            if result is not None and not isinstance(result, Node):
                raise SpecError(f"pass '{self.name}': visiting {shown(node.id)} returned "
                                f"{type(result).__name__}", node.loc,
                                expected="a Node (copied or emitted) or None to delete it")
            self._env[node.id] = None if result is None else result.id
            if result is not None and result.shape != node.shape:
                self._reshaped.add(result.id)
        self.current = None
        self.out.output = self._new_id(self.source.output, "the network's output")
        self._prune_scope_kinds()
        if ACTIVE_PASS.get() is None:  # inside nasir.transform, the pipeline verifies the result
            self.out.verify()
        return self.out

    def visit(self, node: Node) -> Node | None:
        """Dispatch to `visit_<op>` when the subclass defines it, else copy the node."""
        handler = getattr(self, f"visit_{node.op}", None)
        return handler(node) if handler is not None else self.copy(node)

    # -- building the new IR
    def inputs(self, node: Node) -> list[str]:
        """The ids in the new IR that now carry `node`'s inputs."""
        return [self._new_id(i, f"input of {node.id}") for i in node.inputs]

    def copy(self, node: Node) -> Node:
        """`node` unchanged, its inputs remapped; its shape is inferred again only when an
        input's shape changed."""
        inputs = self.inputs(node)
        shape = node.shape
        if any(i in self._reshaped for i in inputs):
            shape = self._infer(node.op, node.attrs, inputs)
        return self.out.add(Node(node.id, node.op, node.attrs, tuple(inputs), node.loc, shape,
                                 made_by=node.made_by))

    def emit(self, op: str, attrs: dict[str, Any], inputs: Sequence[str | Node], name: str,
             scope: str | Sequence[str] | None = None,
             kind: tuple[str, str] | None = None) -> Node:
        """Add a new `op` node named `name` inside `scope` (default: the visited node's).

        `attrs` go through the op's own resolution and pydantic model, as a spec's would;
        `inputs` are ids (or nodes) of the new IR; `kind` records the scope's kind, as
        `("block", "ghost_module")`, for a scope this pass opens.
        """
        from nasir.ops import ShapeError, get_op

        definition = get_op(op)
        if definition is None:
            raise SpecError(f"pass '{self.name}' emits unknown op '{shown(op)}'")
        ids = [i.id if isinstance(i, Node) else i for i in inputs]
        missing = [i for i in ids if i not in self.out]
        if missing:
            raise SpecError(f"pass '{self.name}' emits {op} on {shown(str(missing[0]))}, "
                            "which is not (yet) in the new IR",
                            expected="inputs from self.inputs(node) or earlier emits")
        shapes = [self.out.node(i).shape for i in ids]
        try:
            stored, resolved = definition.resolve(dict(attrs), shapes)
            model = get_op(stored).Attrs(**resolved)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(map(str, first["loc"])) or "(all)"
            raise SpecError(f"pass '{self.name}' gives {op} invalid attributes: parameter "
                            f"'{field}': {first['msg'].lower()}",
                            expected=definition.doc or None) from None
        except ShapeError as exc:
            raise SpecError(f"pass '{self.name}': {op} does not fit its inputs: "
                            f"{exc.message}") from None
        path = self._scope(scope)
        if kind is not None:
            self.out.scope_kinds.setdefault("/".join(path), kind)
        node_id = scope_path(path, name)
        if node_id in self.out:
            raise SpecError(f"pass '{self.name}' emits {shown(node_id)}, which already exists",
                            expected="a name not yet used in that scope")
        shape = self._infer(stored, model, ids)
        return self.out.add(Node(node_id, stored, model, tuple(ids), self._loc(), shape,
                                 made_by=self.name))

    def splice_block(self, block: str, inputs: Sequence[str | Node], args: dict[str, Any],
                     spec: str = "std.arch", label: str | None = None) -> Node:
        """Replace the visited node by `block(inputs, **args)` from the `.arch` file `spec`.

        The block is elaborated by nasir itself (a one-line network that imports `spec`
        and calls it on inputs of the new inputs' shapes), then its nodes are copied into
        a new scope `label` (default: the visited node's name) in the visited node's scope.
        """
        ids = [i.id if isinstance(i, Node) else i for i in inputs]
        shapes = [self.out.node(i).shape for i in ids]
        label = label or self.current.name
        if not (_IDENT.fullmatch(block) and _LABEL.fullmatch(label) and ids
                and all(_IDENT.fullmatch(k) for k in args)):
            raise SpecError(f"pass '{self.name}' splices {shown(block)} with a bad name, "
                            "label or parameter, or without inputs",
                            expected="identifiers for the block, label and parameters")
        text = _wrapper(spec, block, shapes, args, label)
        wrapper = self._blocks.get(text)
        if wrapper is None:
            import nasir.api  # the front end sits above the IR: import at call time

            wrapper = nasir.api.load(text, network=_SPLICE_NETWORK, text=True)
            self._blocks[text] = wrapper
        return self._graft(wrapper, ids)

    # -- internals
    def _graft(self, wrapper: IR, ids: list[str]) -> Node:
        prefix = self._scope(None)
        rename = dict(zip(wrapper.inputs, ids, strict=True))
        for node in wrapper.nodes():
            if node.op == "input":
                continue
            new_id = scope_path(prefix, node.id)
            rename[node.id] = new_id
            if new_id in self.out:
                raise SpecError(f"pass '{self.name}' splices {shown(new_id)}, which already "
                                "exists")
            self.out.add(Node(new_id, node.op, node.attrs,
                              tuple(rename[i] for i in node.inputs), self._loc(), node.shape,
                              made_by=self.name))
        for path, kind in wrapper.scope_kinds.items():
            self.out.scope_kinds["/".join([*prefix, path])] = kind
        return self.out.node(rename[wrapper.output])

    def _new_id(self, source_id: str, what: str) -> str:
        if source_id not in self._env:
            raise SpecError(f"pass '{self.name}' uses {shown(source_id)} ({what}) before it "
                            "was visited")
        new = self._env[source_id]
        if new is None:
            raise SpecError(f"pass '{self.name}' deleted {shown(source_id)}, but it is still "
                            f"used ({what})", self.source.node(source_id).loc,
                            expected="delete only nodes whose value nothing kept uses")
        return new

    def _infer(self, op: str, attrs: Any, ids: list[str]) -> Shape | None:
        from nasir.ops import ShapeError, get_op

        shapes = [self.out.node(i).shape for i in ids]
        if any(s is None for s in shapes):
            return None
        try:
            return tuple(get_op(op).infer(attrs, shapes))
        except ShapeError as exc:
            raise SpecError(f"pass '{self.name}': {op} no longer fits its inputs: "
                            f"{exc.message}") from None

    def _scope(self, scope: str | Sequence[str] | None) -> tuple[str, ...]:
        if scope is None:
            return self.current.scope if self.current else ()
        parts = tuple(scope.split("/")) if isinstance(scope, str) else tuple(scope)
        return tuple(p for p in parts if p)

    def _loc(self) -> SourceLoc | None:
        return self.current.loc if self.current else None

    def _blame(self, err: SpecError, node: Node) -> SpecError:
        """Name the pass and the node in an error raised while visiting `node`."""
        if not err.message.startswith(f"pass '{self.name}'"):
            err.message = f"pass '{self.name}': {err.message}"
        if f"at node {node.id}" not in err.message:
            err.message += f" (at node {shown(node.id)})"
        if err.loc is None:
            err.loc = node.loc
        elif err.loc != node.loc:  # e.g. inside a spliced block's call
            err.notes.append(Note(f"while rewriting {shown(node.id)}, made here", node.loc))
        return err

    def _prune_scope_kinds(self) -> None:
        used = {"/".join(n.scope[:d]) for n in self.out.nodes() for d in range(1, len(n.scope) + 1)}
        self.out.scope_kinds = {k: v for k, v in self.out.scope_kinds.items() if k in used}


def _wrapper(spec: str, block: str, shapes: list[Shape | None], args: dict[str, Any],
             label: str) -> str:
    """The text of a network that imports `spec` and calls `block` once, labelled `label`."""
    if not _SAFE_STR.fullmatch(spec) or any(s is None for s in shapes):
        raise SpecError(f"cannot splice from {shown(spec)}: a spec file name of plain "
                        "characters, and inputs with shapes, are needed")
    lines = [f'import "{spec}"', f"network {_SPLICE_NETWORK}() {{"]
    names = [f"x{i}" for i in range(len(shapes))]
    for name, shape in zip(names, shapes, strict=True):
        lines.append(f"    input {name}: {'x'.join(map(str, shape))}")
    call = ", ".join([*names, *(f"{k}={_literal(v)}" for k, v in args.items())])
    lines += [f"    return {block}({call}) as {label}", "}"]
    return "\n".join(lines) + "\n"


def _literal(value: Any) -> str:
    """A parameter value as .arch text: bool, int, float, plain string, or a list of them."""
    from nasir.parse.parser import arch_literal  # the front end sits above the IR

    if not _plain(value):
        raise SpecError(f"cannot pass {shown(repr(value))} to a spliced block",
                        expected="a bool, int, finite float, plain string, or a list of them")
    return arch_literal(value)


def _plain(value: Any) -> bool:
    """Whether `value` is one the splice wrapper passes: strings of plain characters only."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, bool | int):
        return True
    if isinstance(value, str):
        return bool(_SAFE_STR.fullmatch(value))
    return isinstance(value, list | tuple) and all(_plain(v) for v in value)
