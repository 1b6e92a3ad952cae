"""The `condense` pass: a training-form CondenseNet in its deployed (converted) form.

Huang et al., "CondenseNet" (CVPR 2018) train learned group convolutions as masked dense 1x1
convs and a classifier over every feature; the official ShichenLiu/CondenseNet
`utils.convert_model` then replaces each `LearnedGroupConv` by a `CondenseConv` (index_select
of the kept channels, group conv, `ShuffleLayer`) and the `CondensingLinear` classifier by a
`CondenseLinear` over its int(in*keep) kept features. This pass does the same on the IR:

- `learned_group_conv(out, groups, condense=C)` on `in` channels becomes
  `condensed_conv(out, groups, select=in*groups/C)`;
- `condensing_linear(out, keep, bias)` on `in` features becomes
  `condensed_linear(out, select=int(in*keep), bias)`.

Each new node keeps the replaced node's id (so per-layer reports line up) and shape; every
other node is copied unchanged, so the pass is idempotent. The BN and ReLU before a learned
group conv stay over all `in` channels (the deviation noted in nasir.ops.learned_group_conv).
Trained weights are not converted here: the compiled condensed network starts fresh.
"""

from __future__ import annotations

from nasir.ir.graph import IR, Node
from nasir.ir.rewrite import Transformer
from nasir.ops.learned_group_conv import kept_features
from nasir.passes.pipeline import register_pass

TRAINING_OPS = frozenset({"learned_group_conv", "condensing_linear"})
"""The ops this pass replaces: the training forms that have a deployed form."""


class Condense(Transformer):
    """Each training-form CondenseNet layer becomes its deployed op under the same id."""

    name = "condense"

    def _in(self, node: Node) -> int:
        """Channels (or features) the node's input now has."""
        return self.out.node(self.inputs(node)[0]).shape[0]

    def visit_learned_group_conv(self, node: Node) -> Node:
        a = node.attrs
        select = self._in(node) * a.groups // a.factor
        return self.emit("condensed_conv", {"out": a.out, "groups": a.groups, "select": select},
                         self.inputs(node), node.name)

    def visit_condensing_linear(self, node: Node) -> Node:
        a = node.attrs
        select = kept_features(self._in(node), a.keep)
        return self.emit("condensed_linear", {"out": a.out, "select": select, "bias": a.bias},
                         self.inputs(node), node.name)


@register_pass("condense")
def condense(ir: IR) -> IR:
    """Contract: every learned_group_conv becomes condensed_conv (index_select of in*G/C
    channels, 1x1 conv with G groups, shuffle) and every condensing_linear becomes
    condensed_linear (index_select of int(in*keep) features, linear), with the same node ids
    and shapes; CondenseNet's deployed form, as the official `convert_model`."""
    return Condense(ir).transform()


def condensed_form(ir: IR) -> IR:
    """`ir` after the condense pass, or `ir` itself when it has nothing to condense (what
    `CountingPolicy(condensed=True)` counts)."""
    if not any(node.op in TRAINING_OPS for node in ir.nodes()):
        return ir
    return condense(ir)
