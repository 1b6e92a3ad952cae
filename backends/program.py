"""The IR cut into scopes: for every block instance, the steps it runs and its boundary.

Both PyTorch backends (the in-memory module and the generated source) read this, so a
compiled module and its generated source have the same module tree and parameter names.

Naming rule (`attr_name`, the only place that maps a spec label to a module attribute):
a label is kept verbatim, so state-dict keys are the spec's labels joined by "." (`stem.conv
.weight`, `features.0.1.weight`, `class.weight`: nn.Module accepts digits and Python keywords
as child names). Only labels that would shadow an attribute of the modules nasir builds
(`training`, `forward`, `cuda`, `_modules`, `network`, ... : every attribute of
`nn.Module`, of an `nn.Module` instance and of nasir's `NasirModel`) are mangled, by one more
trailing `_`. To stay one-to-one the whole family of underscore-suffixed names past a
reserved one moves too: `training` -> `training_`, `training_` -> `training__`, while
`__init` (below the reserved `__init__`) stays. Generated Python writes children whose names
are not plain identifiers with `add_module("0", ...)` and reads them with `getattr`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import torch.nn as nn

from nasir.ir.graph import IR, Node
from nasir.ops import Function, Layer, get_op
from nasir.passes.inplace import plan_inplace

# Attributes the modules nasir builds set on themselves (ScopeModule, NasirModel).
_OWN_ATTRIBUTES = {"_inputs", "_outputs", "_steps", "_prepare", "network", "input_shapes",
                   "example_inputs"}


@cache
def reserved_names() -> frozenset[str]:
    """Names a child module may not take: nn.Module's class and instance attributes and
    those of nasir's own module classes."""
    return frozenset({*dir(nn.Module), *vars(nn.Module()), *_OWN_ATTRIBUTES})


def attr_name(name: str) -> str:
    """The module attribute (and state-dict key part) for a node or scope label.

    Injective: different labels never get the same attribute (see the module docstring).
    """
    base = name.rstrip("_")
    suffix = len(name) - len(base)
    taken = sorted(_families().get(base, ()))
    if not taken or taken[0] > suffix:
        return name
    shifted = suffix
    for k in taken:  # the suffix-th member of the family that is not reserved
        if k <= shifted:
            shifted += 1
    return base + "_" * shifted


@cache
def _families() -> dict[str, list[int]]:
    """Each reserved name as (name without trailing `_`) -> its numbers of trailing `_`."""
    families: dict[str, list[int]] = {}
    for name in reserved_names():
        base = name.rstrip("_")
        families.setdefault(base, []).append(len(name) - len(base))
    return families


@dataclass
class Step:
    """One line of a scope's forward: a node (module or function) or a child scope call."""

    kind: str  # "layer" | "function" | "scope"
    name: str  # attribute name (layer, scope) or node name (function)
    inputs: list[str]
    outputs: list[str]
    node: Node | None = None
    lowering: Layer | Function | None = None
    child: str | None = None  # for scope steps: the key in ScopeProgram.children


@dataclass
class ScopeProgram:
    path: tuple[str, ...]
    kind: tuple[str, str]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    children: dict[str, ScopeProgram] = field(default_factory=dict)


def scope_program(ir: IR, inplace: bool = True) -> ScopeProgram:
    """The root program of `ir` (whose inputs are the network inputs). With `inplace`, the
    nodes of `plan_inplace` lower to their in-place form, the overwritten input first."""
    nodes = [n for n in ir.nodes() if n.op != "input"]
    plan = plan_inplace(ir) if inplace else {}
    root = _build(ir, (), ("network", ir.name), nodes, plan)
    root.inputs = list(ir.inputs)
    root.outputs = [ir.output]
    return root


def _build(ir: IR, path: tuple[str, ...], kind: tuple[str, str],
           nodes: list[Node], plan: dict[str, int]) -> ScopeProgram:
    prog = ScopeProgram(path, kind)
    inside = {n.id for n in nodes}
    depth = len(path)
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if len(node.scope) == depth:
            prog.steps.append(_node_step(ir, node, plan.get(node.id)))
            i += 1
            continue
        child = node.scope[depth]
        j = i
        while j < len(nodes) and len(nodes[j].scope) > depth and nodes[j].scope[depth] == child:
            j += 1
        child_path = (*path, child)
        if child in prog.children:
            raise ValueError(f"scope {'/'.join(child_path)} is not contiguous in the IR")
        sub = _build(ir, child_path, ir.scope_kinds.get("/".join(child_path), ("scope", child)),
                     nodes[i:j], plan)
        prog.children[child] = sub
        prog.steps.append(Step("scope", attr_name(child), sub.inputs, sub.outputs, child=child))
        i = j
    prog.inputs = _boundary_inputs(ir, nodes, inside)
    prog.outputs = _boundary_outputs(ir, nodes, inside)
    return prog


def last_uses(prog: ScopeProgram) -> list[list[str]]:
    """For each step of `prog`, the tensors it reads for the last time (not the scope's
    outputs): what a forward can let go of once the step has run, so intermediate tensors
    are freed as soon as they die, as hand-written code that rebinds `out` frees them."""
    last: dict[str, int] = {}
    for index, step in enumerate(prog.steps):
        for tensor in step.inputs:
            last[tensor] = index
    keep = set(prog.outputs)
    dying: list[list[str]] = [[] for _ in prog.steps]
    for tensor, index in last.items():
        if tensor not in keep:
            dying[index].append(tensor)
    return dying


def _node_step(ir: IR, node: Node, into: int | None = None) -> Step:
    ins = [ir.node(i).shape for i in node.inputs]
    op = get_op(node.op)
    inputs = list(node.inputs)
    if into is None:
        lowering = op.lower(node.attrs, ins, node.shape)
    else:
        lowering = op.lower_inplace(node.attrs, ins, node.shape, into)
        inputs.insert(0, inputs.pop(into))
    kind = "layer" if isinstance(lowering, Layer) else "function"
    return Step(kind, attr_name(node.name), inputs, [node.id], node, lowering)


def _boundary_inputs(ir: IR, nodes: list[Node], inside: set[str]) -> list[str]:
    used = {i for n in nodes for i in n.inputs if i not in inside}
    return sorted(used, key=lambda i: ir.node(i).order)


def _boundary_outputs(ir: IR, nodes: list[Node], inside: set[str]) -> list[str]:
    outs = [n.id for n in nodes
            if n.id == ir.output or any(u not in inside for u in ir.users(n.id))]
    return outs
