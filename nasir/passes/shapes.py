"""Shape inference: the output shape (channels first, no batch) of every IR node.

Contract: returns a copy of the IR with `shape` set on every node, or raises a `SpecError`
at the node whose inputs do not fit, with notes at the spec locations of those inputs.
"""

from __future__ import annotations

from nasir.errors import Note, SpecError
from nasir.gcpause import without_gc
from nasir.ir.graph import IR
from nasir.ops import ShapeError, get_op


@without_gc
def infer_shapes(ir: IR) -> IR:
    out = ir.copy()
    for node in out.nodes():
        op = get_op(node.op)
        if op is None:
            raise SpecError(f"node {node.id} uses unknown op '{node.op}'", node.loc)
        ins = [out.node(i).shape for i in node.inputs]
        try:
            shape = tuple(op.infer(node.attrs, ins))
        except ShapeError as exc:
            notes = [Note(f"input {i} is {node.inputs[i]} ({_fmt(ins[i])})",
                          out.node(node.inputs[i]).loc) for i in exc.inputs if i < len(ins)]
            raise SpecError(f"{node.op} at {node.id}: {exc.message}", node.loc,
                            notes=notes) from None
        out.update(node.id, shape=shape)
    return out


def _fmt(shape: tuple[int, ...] | None) -> str:
    return "x".join(map(str, shape or ()))
