"""The `adder` pass: AdderNet's adder layer in place of plain convolutions.

Chen et al., "AdderNet: Do We Really Need Multiplications in Deep Learning?" (CVPR 2020):
every convolution becomes an adder layer (Y = -sum|X - W|) of the same shape, except the
first conv and the classifier, which stay multiplicative as in the official
huawei-noah/AdderNet resnet20.py / resnet50.py. "First conv" and "classifier" are defined
by `nasir.passes.ghost.protected_layers`.
"""

from __future__ import annotations

from nasir.ir.graph import IR, Node
from nasir.ir.rewrite import Transformer
from nasir.passes.ghost import check_flags, protected_layers
from nasir.passes.pipeline import register_pass


class Adder(Transformer):
    """Each replaceable conv becomes `adder(out, kernel, stride, pad, bias)` under its name."""

    def __init__(self, ir: IR, kept: set[str]):
        super().__init__(ir, name="adder")
        self.kept = kept

    def visit_conv(self, node: Node) -> Node:
        a = node.attrs
        if node.id in self.kept or a.groups != 1 or a.dilation != 1 or not isinstance(a.pad, int):
            return self.copy(node)
        return self.emit("adder", {"out": a.out, "kernel": a.kernel, "stride": a.stride,
                                   "pad": a.pad, "bias": a.bias}, self.inputs(node), node.name)


@register_pass("adder")
def adder(ir: IR, keep_first: bool = True, keep_last: bool = True) -> IR:
    """Contract: every dense conv (groups=1, dilation=1, one pad for every side) becomes an
    adder layer with the same id, out, kernel, stride, pad and bias, so shapes are unchanged;
    the first conv and the classifier stay convs unless keep_first/keep_last are false."""
    check_flags("adder", keep_first=keep_first, keep_last=keep_last)
    return Adder(ir, protected_layers(ir, keep_first, keep_last)).transform()
