"""The `adder` pass: AdderNet's adder layer in place of plain convolutions.

Chen et al., "AdderNet: Do We Really Need Multiplications in Deep Learning?" (CVPR 2020):
every convolution becomes an adder layer (Y = -sum|X - W|) of the same shape, except the
first conv and the classifier, which stay multiplicative as in the official
huawei-noah/AdderNet resnet20.py / resnet50.py. "First conv" and "classifier" are defined
by `nasir.passes.ghost.protected_layers`.

The head: the official code's classifier is not a linear layer but a 1x1 conv `fc` followed
by BN `bn2` (resnet20.py: `nn.Conv2d(64, num_classes, 1, bias=False)`, `nn.BatchNorm2d`;
resnet50.py the same with the conv's default bias). So by default (`head=true`) a trailing
`gap -> flatten -> linear(C)` head becomes `gap -> conv(C, 1) -> bn -> flatten`, the conv
under the linear's name and the BN named `bn2`: `adder` of the shipped resnet20 is then
exactly the shipped addernet20 (same nodes, attributes, shapes, counts and state-dict keys),
and `adder:fc_bias=true` of resnet50 is addernet_resnet50. The conv has no bias by default
(`fc_bias=false`), as in resnet20.py, AdderNet's main CIFAR benchmark: a bias right before a
BN is redundant, the BN's mean subtraction cancels it. `head=false` leaves the linear as is.
With `keep_last=false` the new 1x1 conv is itself an adder layer.
"""

from __future__ import annotations

from nasir.ir.graph import IR, Node, scope_path
from nasir.ir.rewrite import Transformer
from nasir.passes.ghost import check_flags, protected_layers
from nasir.passes.pipeline import register_pass

HEAD_BN = "bn2"  # the official name of the BN after the 1x1-conv classifier


def linear_heads(ir: IR) -> dict[str, tuple[str, str]]:
    """Linear ids of `gap -> flatten -> linear` chains (each value: the gap and flatten ids)
    whose gap and flatten feed nothing else, where the linear's scope has no `bn2` yet."""
    heads: dict[str, tuple[str, str]] = {}
    for node in ir.nodes():
        if node.op != "linear" or len(node.inputs) != 1:
            continue
        flat = ir.node(node.inputs[0])
        if flat.op != "flatten" or len(flat.inputs) != 1 or ir.users(flat.id) != [node.id]:
            continue
        pool = ir.node(flat.inputs[0])
        if pool.op != "gap" or ir.users(pool.id) != [flat.id] or flat.id == ir.output:
            continue
        if scope_path(node.scope, HEAD_BN) in ir:
            continue
        heads[node.id] = (pool.id, flat.id)
    return heads


class Adder(Transformer):
    """Each replaceable conv becomes `adder(out, kernel, stride, pad, bias)` under its name;
    each head in `heads` becomes AdderNet's 1x1 conv + BN classifier."""

    def __init__(self, ir: IR, kept: set[str], heads: dict[str, tuple[str, str]],
                 fc_bias: bool):
        super().__init__(ir, name="adder")
        self.kept, self.heads, self.fc_bias = kept, heads, fc_bias
        self.flattens = {flat: linear for linear, (_, flat) in heads.items()}

    def visit_conv(self, node: Node) -> Node:
        a = node.attrs
        if node.id in self.kept or a.groups != 1 or a.dilation != 1 or not isinstance(a.pad, int):
            return self.copy(node)
        return self.emit("adder", {"out": a.out, "kernel": a.kernel, "stride": a.stride,
                                   "pad": a.pad, "bias": a.bias}, self.inputs(node), node.name)

    def visit_flatten(self, node: Node) -> Node | None:
        """A head's flatten moves after the BN (emitted when its linear is visited)."""
        return None if node.id in self.flattens else self.copy(node)

    def visit_linear(self, node: Node) -> Node:
        if node.id not in self.heads:
            return self.copy(node)
        pool, flat = self.heads[node.id]
        pooled = self._new_id(pool, f"input of {node.id}")
        attrs = {"out": node.attrs.out, "kernel": 1, "bias": self.fc_bias}
        op = "conv" if node.id in self.kept else "adder"
        fc = self.emit(op, attrs, [pooled], node.name)
        bn = self.emit("bn", {}, [fc], HEAD_BN)
        return self.emit("flatten", {}, [bn], self.source.node(flat).name,
                         scope=self.source.node(flat).scope)


@register_pass("adder")
def adder(ir: IR, keep_first: bool = True, keep_last: bool = True, head: bool = True,
          fc_bias: bool = False) -> IR:
    """Contract: every dense conv (groups=1, dilation=1, one pad for every side) becomes an
    adder layer with the same id, out, kernel, stride, pad and bias, so shapes are unchanged;
    the first conv and the classifier stay convs unless keep_first/keep_last are false. With
    `head`, a `gap -> flatten -> linear(C)` head becomes AdderNet's `gap -> conv(C, 1,
    bias=fc_bias) -> bn2 -> flatten` (an adder 1x1 instead of the conv if not keep_last)."""
    check_flags("adder", keep_first=keep_first, keep_last=keep_last, head=head,
                fc_bias=fc_bias)
    heads = linear_heads(ir) if head else {}
    return Adder(ir, protected_layers(ir, keep_first, keep_last), heads, fc_bias).transform()
