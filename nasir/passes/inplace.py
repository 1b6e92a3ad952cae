"""The in-place planner: which nodes may write their result into one of their inputs.

Out-of-place activations and residual sums allocate a fresh tensor per op; hand-written
PyTorch (torchvision's ResNets, the official GhostNet) instead runs ReLU with
`inplace=True` after BN and accumulates the shortcut into the branch (`out += identity`),
halving the memory traffic of those ops. Both backends do the same from this plan.

Contract: `plan_inplace(ir)` returns {node id: input index} for the nodes that may overwrite
that input, and changes nothing. A node is planned when its op can write into that input
(`OpDef.inplace_inputs`) and the input tensor

- is made by an op with `fresh_output` (a new tensor aliasing nothing, that its backward
  never reads: conv, bn, add, concat, pools ...; never a network input, a view or an alias);
- is read by this node alone, once, and is not the network's output.

So no later node can see the overwritten value and autograd never needs it: forward and
backward results are exactly those of the out-of-place module (the tests check both).
"""

from __future__ import annotations

from nasir.ir.graph import IR
from nasir.ops import get_op


def plan_inplace(ir: IR) -> dict[str, int]:
    """{node id: the input it may overwrite} (see the module docstring)."""
    plan: dict[str, int] = {}
    for node in ir.nodes():
        op = get_op(node.op)
        if op is None:
            continue
        for index in op.inplace_inputs(node.attrs, len(node.inputs)):
            if _overwritable(ir, node.inputs, index, node.id):
                plan[node.id] = index
                break
    return plan


def _overwritable(ir: IR, inputs: tuple[str, ...], index: int, reader: str) -> bool:
    source = inputs[index]
    producer = get_op(ir.node(source).op)
    return (producer is not None and producer.fresh_output and source != ir.output
            and inputs.count(source) == 1 and ir.users(source) == [reader])
