"""Generated specs of any size for the scaling rows of the benchmarks.

Two shapes of network, each about `nodes` IR nodes:

- ``chain``: a plain stack of conv -> bn -> relu triples, every layer labelled (a flat
  network with one scope, the worst case for a generated ``forward``);
- ``cell``: NASNet-like cells (two inputs, four branches of conv/bn/relu and pooling,
  additions and a concatenation), each cell its own scope, so the IR keeps hierarchy.

Widths are tiny (4 channels, 8x8 maps) so that even 300k nodes build a module quickly: the
benchmarks measure the compiler, not the layers.

    python bench/scaling_specs.py chain 10000 > /tmp/chain10k.arch
"""

from __future__ import annotations

import sys

CHAIN_NODES_PER_STEP = 3  # conv, bn, relu
CELL_NODES = 20  # nodes one cell elaborates to (checked by the bench)

CHAIN = """\
# {nodes} nodes: a chain of conv -> bn -> relu, generated for the scaling benchmarks.
import "std.arch"

network chain(steps: int = {steps}) {{
    input x: 4x8x8
    y = x
    for i in range(steps) {{
        y = y >> conv(4, 1) as ("conv" + str(i)) >> bn as ("bn" + str(i)) >> relu
    }}
    return y
}}
"""

CELL = """\
# About {nodes} nodes: NASNet-like cells, generated for the scaling benchmarks.
import "std.arch"

block branch(x, c: int) {{
    return x >> relu >> conv(c, 1) as conv >> bn as bn
}}

cell normal(prev, cur, c: int) {{
    a = prev >> branch(c) as left0
    b = cur >> branch(c) as right0
    s0 = a + b
    p = cur >> avgpool(3, 1, 1)
    s1 = p + prev
    d = s0 >> branch(c) as left2
    s2 = d + cur
    m = cur >> maxpool(3, 1, 1)
    s3 = m + s1
    return concat(s0, s1, s2, s3) >> conv(c, 1) as squeeze
}}

network cells(n: int = {cells}) {{
    input x: 4x8x8
    prev = x
    cur = x
    for i in range(n) {{
        nxt = normal(prev, cur, 4) as ("cell" + str(i))
        prev = cur
        cur = nxt
    }}
    return cur
}}
"""


def spec_text(kind: str, nodes: int) -> str:
    """The text of a `kind` ("chain" or "cell") network of about `nodes` IR nodes."""
    if kind == "chain":
        return CHAIN.format(nodes=nodes, steps=max(1, nodes // CHAIN_NODES_PER_STEP))
    if kind == "cell":
        return CELL.format(nodes=nodes, cells=max(1, nodes // CELL_NODES))
    raise ValueError(f"unknown kind {kind!r}: chain or cell")


if __name__ == "__main__":
    sys.stdout.write(spec_text(sys.argv[1], int(sys.argv[2])))
