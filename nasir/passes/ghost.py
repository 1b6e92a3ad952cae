"""The `ghost` pass: GhostNet's Ghost module in place of plain convolutions.

Han et al., "GhostNet: More Features from Cheap Operations" (CVPR 2020), §4.1, build
Ghost-VGG-16, Ghost-ResNet-56 and Ghost-ResNet-50 by replacing the convolutional layers of
the baseline with Ghost modules of ratio s and cheap kernel d; the module comes from the
shipped `ghostnet.arch` (`ghost_module`), so its structure has one source, the language.

Which layers stay (`protected_layers`, shared with the `adder` pass):
- the *first* conv: the first `conv` in creation order that reads a network input through
  non-layer ops only (the stem, as the paper and AdderNet keep it);
- the *classifier*: every weighted layer that reaches the network output through non-layer
  ops only (resnet's `fc` linear, addernet's 1x1-conv `fc` followed by BN and flatten).
"Layer ops" are the weighted ones in `LAYER_OPS`; everything else (bn, relu, pooling,
flatten, add, concat, slice, ...) is "free" for this purpose.
Limits: ratio <= MAX_GHOST_RATIO (64), dw <= MAX_GHOST_KERNEL (31).
"""

from __future__ import annotations

from nasir.errors import SpecError, shown
from nasir.ir.graph import IR, Node
from nasir.ir.rewrite import Transformer
from nasir.passes.pipeline import register_pass

LAYER_OPS = frozenset({"conv", "adder", "linear", "learned_group_conv", "condensing_linear"})
MAX_GHOST_RATIO = 64  # s: the paper uses 2-5; larger only multiplies cheap channels
MAX_GHOST_KERNEL = 31  # d: the paper uses 1-7


def protected_layers(ir: IR, keep_first: bool, keep_last: bool) -> set[str]:
    """Ids of the first conv (if `keep_first`) and the classifier layers (if `keep_last`)."""
    kept: set[str] = set()
    if keep_first:
        reach = set(ir.inputs)
        for node in ir.nodes():
            if not any(i in reach for i in node.inputs):
                continue
            if node.op == "conv":
                kept.add(node.id)
                break
            if node.op not in LAYER_OPS:
                reach.add(node.id)
    if keep_last and ir.output is not None:
        todo, seen = [ir.output], set()
        while todo:
            node = ir.node(todo.pop())
            if node.id in seen:
                continue
            seen.add(node.id)
            if node.op in LAYER_OPS:
                kept.add(node.id)
            else:
                todo.extend(node.inputs)
    return kept


def check_int(pass_name: str, name: str, value: object, bounds: tuple[int, int], limit: str,
              expected: str) -> int:
    """`value` if it is an int within `bounds`, else a SpecError naming the limit."""
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"pass '{pass_name}': option {name}={shown(repr(value))} is not an "
                        f"integer from {low} to {high} (the limit {limit})", expected=expected)
    return value


def check_flags(pass_name: str, **flags: object) -> None:
    """A SpecError unless every flag is a bool (`keep_first=true`, not `keep_first=yes`)."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise SpecError(f"pass '{pass_name}': option {name}={shown(repr(value))} is not "
                            "true or false", expected=f"{pass_name}:{name}=false")


class Ghost(Transformer):
    """Each replaceable conv becomes `ghost_module(out, ratio, k, dw, stride, relu=false)`."""

    def __init__(self, ir: IR, ratio: int, dw: int, kept: set[str]):
        super().__init__(ir, name="ghost")
        self.ratio, self.dw, self.kept = ratio, dw, kept

    def replaceable(self, node: Node) -> bool:
        a = node.attrs
        return (node.id not in self.kept and node.made_by != self.name
                and a.groups == 1 and a.dilation == 1 and a.pad == (a.kernel - 1) // 2)

    def visit_conv(self, node: Node) -> Node:
        if not self.replaceable(node):
            return self.copy(node)
        a = node.attrs
        args = {"out": a.out, "ratio": self.ratio, "k": a.kernel, "dw": self.dw,
                "stride": a.stride, "relu": False}
        return self.splice_block("ghost_module", self.inputs(node), args, spec="ghostnet.arch")


@register_pass("ghost")
def ghost(ir: IR, ratio: int = 2, dw: int = 3, keep_first: bool = True,
          keep_last: bool = True) -> IR:
    """Contract: every plain conv (groups=1, dilation=1, "same" pad; not the first conv or the
    classifier unless keep_first/keep_last are false; not one this pass made) becomes a Ghost
    module of the same width and stride, without ReLU; the conv's own BN/ReLU after it stay."""
    expected = "ghost:ratio=2,dw=3 (ratio >= 2, dw an odd kernel >= 1)"
    ratio = check_int("ghost", "ratio", ratio, (2, MAX_GHOST_RATIO), "MAX_GHOST_RATIO",
                      expected)
    dw = check_int("ghost", "dw", dw, (1, MAX_GHOST_KERNEL), "MAX_GHOST_KERNEL", expected)
    check_flags("ghost", keep_first=keep_first, keep_last=keep_last)
    if dw % 2 == 0:
        raise SpecError(f"pass 'ghost': option dw={dw} is even; the cheap depthwise conv "
                        "needs an odd kernel to keep the feature-map size",
                        expected="dw=1, 3, 5, ...")
    return Ghost(ir, ratio, dw, protected_layers(ir, keep_first, keep_last)).transform()
