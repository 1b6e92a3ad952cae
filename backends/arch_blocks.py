"""IR -> .arch that reads like a hand-written spec: one `block` per distinct scope structure.

Every scope made by a block or cell call (`IR.scope_kinds`) that has inputs and one output
becomes a call of a `block` definition. Scopes with the same structure (ops, attribute
names, wiring, labels, and the same structure for the blocks they call) share one
definition; attribute values that differ between them become typed parameters whose
default is their most common value, so a call passes only what differs (`basic(x,
conv1_out=32, conv1_stride=2) as 0`). Plain `scope` statements, and scopes with several
outputs, stay inline. Names are fresh: no block, parameter or variable takes the name of an
op, builtin, keyword or another definition. `nasir.backends.arch_printer.to_arch` checks
that the text elaborates back to an equal IR and otherwise prints the flat form.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nasir.backends.arch_printer import (
    _comment,
    _comment_value,
    _label,
    _network_name,
    _variable,
    arch_keywords,
    is_name,
)
from nasir.backends.program import ScopeProgram, scope_program
from nasir.ir.graph import IR, Node
from nasir.ops import get_op
from nasir.parse.parser import arch_literal, quote_string

_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", tuple: "list"}


@dataclass(eq=False)
class _Scope:
    """One scope instance: its structure key, own attribute values and the blocks it calls."""

    prog: ScopeProgram
    block: bool
    key: tuple = ()
    slots: list[Any] = field(default_factory=list)
    slot_names: list[str] = field(default_factory=list)
    calls: list[_Scope] = field(default_factory=list)
    depth: int = 0
    group: _Group | None = None


@dataclass(eq=False)
class _Group:
    """The instances of one structure: one block definition."""

    members: list[_Scope]
    name: str = ""
    params: list[int] = field(default_factory=list)  # positions in the full slot vector
    alias: dict[int, int] = field(default_factory=dict)  # position -> index in params
    param_names: list[str] = field(default_factory=list)
    defaults: list[Any] = field(default_factory=list)


def readable_arch(ir: IR) -> str:
    root = _analyze(scope_program(ir, inplace=False), ir, root=True, context=None)
    groups = _group(root)
    taken = _reserved(ir)
    ordered = sorted(groups.values(), key=lambda g: g.members[0].depth)  # callees first
    for group in ordered:
        _lift(group, taken)
    lines = [f"# {_comment(ir.name)}: elaborated by nasir from {_comment(ir.source or 'a spec')}"]
    if ir.params:
        params = ", ".join(f"{k}={_comment_value(v)}" for k, v in ir.params.items())
        lines.append(f"# parameters: {_comment(params)}")
    for group in ordered:
        lines += ["", *_definition(group, ir)]
    lines += ["", f"network {_network_name(ir.name)}() {{"]
    body, output = _Body(ir, root, None).render()
    lines += [*body, f"    return {output}", "}"]
    return "\n".join(lines) + "\n"


# -- analysis: structure keys and slots -------------------------------------------------------

def _blockable(prog: ScopeProgram) -> bool:
    return prog.kind[0] != "scope" and len(prog.outputs) == 1 and bool(prog.inputs)


def _analyze(prog: ScopeProgram, ir: IR, root: bool, context: _Scope | None) -> _Scope:
    """Post-order: `context` is the block (or root) whose namespace an inline scope joins."""
    scope = _Scope(prog, block=not root and _blockable(prog))
    owner = scope if (root or scope.block) else context
    structure = _walk(prog, ir, owner, scope)
    if scope.block or root:
        base = "/".join(prog.path)
        inputs = tuple(prog.inputs)
        scope.key = (prog.kind[1], len(inputs), _rel(prog.outputs[0], base, inputs)
                     if prog.outputs else None, structure)
        scope.depth = 1 + max((c.depth for c in scope.calls), default=0)
    return scope


def _walk(prog: ScopeProgram, ir: IR, owner: _Scope, scope: _Scope) -> tuple:
    base = "/".join(owner.prog.path)
    inputs = tuple(owner.prog.inputs)
    items = []
    for step in prog.steps:
        if step.kind == "scope":
            child = _analyze(prog.children[step.child], ir, False, owner)
            if child.block:
                owner.calls.append(child)
                items.append(("call", step.child, child.key,
                              tuple(_rel(i, base, inputs) for i in child.prog.inputs)))
            else:
                items.append(("scope", step.child, child.key))
            continue
        node = step.node
        attrs = [(k, v) for k, v in node.attrs.model_dump().items() if v is not None]
        owner.slots += [v for _, v in attrs]
        owner.slot_names += [f"{node.name}_{k}" for k, _ in attrs]
        items.append(("node", node.name, node.op,
                      tuple((k, _type(v)) for k, v in attrs),
                      tuple(_rel(i, base, inputs) for i in node.inputs)))
    if scope is not owner:
        scope.key = tuple(items)
    return tuple(items)


def _rel(node_id: str, base: str, inputs: tuple[str, ...]) -> tuple:
    """A reference that does not depend on where the block sits: an input position or a
    path inside the block."""
    if node_id in inputs:
        return ("in", inputs.index(node_id))
    return ("local", node_id[len(base) + 1:] if base else node_id)


def _type(value: Any) -> str:
    return _TYPES.get(type(value), type(value).__name__)


def _group(root: _Scope) -> dict[tuple, _Group]:
    groups: dict[tuple, _Group] = {}
    todo = list(root.calls)
    while todo:
        scope = todo.pop()
        group = groups.setdefault(scope.key, _Group([]))
        group.members.append(scope)
        scope.group = group
        todo.extend(scope.calls)
    for group in groups.values():  # creation order, so defaults and names follow the spec
        group.members.sort(key=lambda s: _first_order(s))
    return groups


def _first_order(scope: _Scope) -> int:
    step = scope.prog
    while step.steps and step.steps[0].kind == "scope":
        step = step.children[step.steps[0].child]
    return step.steps[0].node.order if step.steps else 0


# -- lifting constants into parameters ----------------------------------------------------------

def _full(scope: _Scope) -> list[Any]:
    """The scope's own slots, then the parameter values of each block it calls."""
    values = list(scope.slots)
    for call in scope.calls:
        values += _param_values(call)
    return values


def _param_values(scope: _Scope) -> list[Any]:
    full = _full(scope)
    return [full[j] for j in scope.group.params]


def _full_names(scope: _Scope) -> list[str]:
    names = list(scope.slot_names)
    for call in scope.calls:
        names += call.group.param_names
    return names


def _lift(group: _Group, taken: set[str]) -> None:
    """A parameter for each distinct vector of values that differ between the instances
    (slots that always agree share one), defaulting to the most common value."""
    first = group.members[0]
    vectors = [_full(s) for s in group.members]
    names = _full_names(first)
    used = set(taken)
    seen: dict[tuple[str, ...], int] = {}
    for j in range(len(vectors[0])):
        values = [v[j] for v in vectors]
        texts = tuple(_literal(x) for x in values)
        if len(set(texts)) == 1:
            continue
        if texts in seen:
            group.alias[j] = seen[texts]
            continue
        seen[texts] = group.alias[j] = len(group.params)
        group.params.append(j)
        group.param_names.append(_fresh(_identifier(names[j]), used))
        common = Counter(texts).most_common(1)[0][0]
        group.defaults.append(values[texts.index(common)])
    group.name = _fresh(_identifier(first.prog.kind[1]), taken)


def _literal(value: Any) -> str:
    return arch_literal(list(value) if isinstance(value, tuple) else value)


# -- names ------------------------------------------------------------------------------------

def _reserved(ir: IR, inputs: bool = True) -> set[str]:
    """Names no block, parameter or variable takes (the network's inputs: in its body)."""
    from nasir.elaborate.builtins import BUILTINS
    from nasir.ops import op_names

    names = (set(arch_keywords()) | set(op_names()) | set(BUILTINS) | {"split", "chunk"}
             | {_network_name(ir.name)})
    return names | {n.name for n in ir.nodes() if n.op == "input"} if inputs else names


def _var_name(label: str) -> str:
    """A variable named after its label; `relu_out` where the label is an op's name."""
    from nasir.ops import get_op

    base = _variable(label)
    return f"{base}_out" if get_op(base) is not None else base


def _identifier(text: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", text) or "b"
    return f"b{base}" if base[0].isdigit() else base


def _fresh(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken or not is_name(name):
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


# -- rendering ----------------------------------------------------------------------------------

def _is_default(node: Node, key: str) -> bool:
    """Whether leaving `key` out of the call gives the same attributes (its default, or the
    size-keeping pad a missing `pad` means)."""
    data = node.attrs.model_dump()
    data.pop(key)
    try:
        return type(node.attrs).model_validate(data) == node.attrs
    except ValueError:  # pydantic's ValidationError: the attribute is required
        return False


def _definition(group: _Group, ir: IR) -> list[str]:
    first = group.members[0]
    body = _Body(ir, first, group)
    params = [*body.input_names]
    params += [f"{name}: {_type(default)} = {_literal(default)}"
               for name, default in zip(group.param_names, group.defaults, strict=True)]
    lines, output = body.render()
    return [f"block {group.name}({', '.join(params)}) {{", *lines, f"    return {output}", "}"]


class _Body:
    """The statements of one block definition (or of the network), in its own namespace."""

    def __init__(self, ir: IR, scope: _Scope, group: _Group | None):
        self.ir, self.scope, self.group = ir, scope, group
        self.taken = _reserved(ir, inputs=group is None) | set(group.param_names if group
                                                               else ())
        if group is not None:
            self.taken.add(group.name)
        self.var: dict[str, str] = {}
        self.input_names = []
        for index, node_id in enumerate(scope.prog.inputs if group else ()):
            name = _fresh("x" if index == 0 else f"x{index}", self.taken)
            self.var[node_id] = name
            self.input_names.append(name)
        self.values = _full(scope)
        self.param_at = ({j: group.param_names[k] for j, k in group.alias.items()}
                         if group else {})
        self.position = 0  # next own slot
        self.call_position = len(scope.slots)  # next call slot

    def render(self) -> tuple[list[str], str]:
        lines = [] if self.group else ["    " + self._node(self.ir.node(i))
                                       for i in self.ir.inputs]
        lines += self._steps(self.scope.prog, 1)
        return lines, self.var[self.scope.prog.outputs[0]] if self.group else self.var[
            self.ir.output]

    def _value(self, position: int) -> str:
        return self.param_at.get(position) or _literal(self.values[position])

    def _steps(self, prog: ScopeProgram, indent: int) -> list[str]:
        pad = "    " * indent
        lines: list[str] = []
        run: list[_Call] = []  # consecutive chained calls that may become one loop
        for step in prog.steps:
            called = None
            if step.kind == "scope":
                child = prog.children[step.child]
                called = next((c for c in self.scope.calls if c.prog is child), None)
            if called is not None:
                call = self._call(called, step.child)
                if run and not run[-1].continued_by(call):
                    lines += self._flush(run, pad)
                    run = []
                run.append(call)
                continue
            lines += self._flush(run, pad)
            run = []
            if step.kind != "scope":
                lines.append(pad + self._node(step.node))
            else:
                lines.append(pad + f"scope {_label(step.child)} {{")
                lines += self._steps(prog.children[step.child], indent + 1)
                lines.append(pad + "}")
        return lines + self._flush(run, pad)

    def _flush(self, run: list[_Call], pad: str) -> list[str]:
        """The calls of `run`: a `for` loop when three or more chain with numbered labels."""
        if len(run) < 3:
            lines = []
            for call in run:
                var = _fresh(_var_name(call.label), self.taken)
                self.var[call.output] = var
                lines.append(pad + call.text(var, [self.var[i] for i in call.inputs],
                                             _label(call.label)))
            return lines
        var = _fresh("y", self.taken)
        index = _fresh("i", self.taken)
        prefix, first = _numbered(run[0].label)
        label = f"({index})" if not prefix else f"({quote_string(prefix)} + str({index}))"
        self.var[run[-1].output] = var
        return [pad + f"{var} = {self.var[run[0].inputs[0]]}",
                pad + f"for {index} in range({first}, {first + len(run)}) {{",
                pad + "    " + run[0].text(var, [var], label),
                pad + "}"]

    def _node(self, node: Node) -> str:
        if node.op == "input":
            if not is_name(node.name):
                raise ValueError(f"input {node.id!r} is no .arch name")
            self.var[node.id] = node.name
            return f"input {node.name}: {'x'.join(map(str, node.attrs.shape))}"
        args = [self.var[i] for i in node.inputs]
        positional = list(get_op(node.op).positional)
        for key, value in node.attrs.model_dump().items():
            if value is None:
                continue
            position = self.position
            self.position += 1
            if position not in self.param_at and _is_default(node, key):
                positional = []  # later attributes need their names
                continue
            text = self._value(position)
            if positional and positional[0] == key:
                positional.pop(0)
                args.append(text)
            else:
                positional = []
                args.append(f"{key}={text}")
        var = _fresh(_var_name(node.name), self.taken)
        self.var[node.id] = var
        return f"{var} = {node.op}({', '.join(args)}) as {_label(node.name)}"

    def _call(self, called: _Scope, label: str) -> _Call:
        group = called.group
        args = []
        for name, default in zip(group.param_names, group.defaults, strict=True):
            position = self.call_position
            self.call_position += 1
            if position in self.param_at:
                args.append(f"{name}={self.param_at[position]}")
            elif _literal(self.values[position]) != _literal(default):
                args.append(f"{name}={_literal(self.values[position])}")
        return _Call(group.name, args, list(called.prog.inputs), called.prog.outputs[0], label)


@dataclass
class _Call:
    """A block call before it is written: alone, or as one turn of a loop."""

    block: str
    args: list[str]
    inputs: list[str]
    output: str
    label: str

    def text(self, var: str, inputs: list[str], label: str) -> str:
        return f"{var} = {self.block}({', '.join([*inputs, *self.args])}) as {label}"

    def continued_by(self, other: _Call) -> bool:
        """Whether `other` is the next turn of a loop ending with this call."""
        mine, theirs = _numbered(self.label), _numbered(other.label)
        return (mine is not None and theirs is not None and mine[0] == theirs[0]
                and theirs[1] == mine[1] + 1 and (self.block, self.args) == (other.block,
                                                                            other.args)
                and len(self.inputs) == 1 and other.inputs == [self.output])


def _numbered(label: str) -> tuple[str, int] | None:
    """("block", 3) for `block3`, ("", 0) for `0`; None for a label without a number (or
    with a leading zero, which str(i) would not write)."""
    match = re.fullmatch(r"([A-Za-z_]*)(0|[1-9][0-9]{0,8})", label)
    return (match[1], int(match[2])) if match else None
