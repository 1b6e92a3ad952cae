"""Hypothesis strategies for property tests of nasir, and of your own ops and passes.

- `feature_shapes()`: CxHxW feature-map shapes (no batch dimension), e.g. `(5, 8, 8)`.
- `conv_attrs(in_channels)`: keyword arguments of the `conv` op that are valid for an input
  with `in_channels` channels (groups divide both channel counts; the default padding keeps
  every kernel inside the padded input as long as the input is at least 1x1).
- `networks()`: the text of a random, *valid* .arch spec defining one network. It chains
  conv-bn-relu, grouped and depthwise convolutions, max/avg pooling, residual adds,
  concatenations, channel slices and squeeze-and-excitation gates, some of them inside
  blocks and `scope`s (so costs roll up through a hierarchy), and ends in the standard
  `classifier` head from `std.arch`. Widths, kernels, strides and groups are drawn so that
  every shape rule holds; the input stays small so real forward passes are cheap.
  Each text imports `std.arch` and defines two small blocks (`unit`, `residual`) before
  the network; `networks(max_stages=6, max_width=12, name="random_net")` tunes its size.
  `networks(stages=..., heads=...)` picks the stage kinds (`STAGES`; the defaults are
  `DEFAULT_STAGES`) and how the network ends (`HEADS`: `classifier`, `split` ensembles,
  CondenseNet's `condensing` classifier).
- `irs()`: `networks()` loaded into shape-checked IR with `nasir.load(text, text=True)`.
- `pass_networks()`, `pass_irs()`: the same over every stage kind and head, adding learned
  group convs, channel shuffles, `split(member, S)` ensembles and condensing classifiers:
  the strategies to test a pass on (see `nasir.testing.passes` and docs/passes.md).

    from hypothesis import given
    from nasir.testing.strategies import irs

    @given(irs())
    def test_my_pass_keeps_the_output_shape(ir):
        assert my_pass(ir).node(ir.output).shape == ir.node(ir.output).shape
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from nasir.ir.graph import IR, Shape

_BLOCKS = '''
block unit(x, out: int, k: int = 3, stride: int = 1, groups: int = 1) {
    "conv-bn-relu with a stride and groups."
    return x >> conv(out, k, stride=stride, groups=groups) >> bn >> relu
}

block residual(x, k: int = 3) {
    "A shape-preserving conv-bn branch added back onto its input."
    y = x >> conv(x.c, k) as conv1 >> bn as bn1
    return x + y >> relu
}
'''


def divisors(n: int) -> list[int]:
    """The divisors of n in increasing order: the legal `groups` for n channels."""
    return [d for d in range(1, n + 1) if n % d == 0]


def feature_shapes(max_channels: int = 16, min_size: int = 1,
                   max_size: int = 16) -> st.SearchStrategy[Shape]:
    """(C, H, W) with 1 <= C <= max_channels and min_size <= H, W <= max_size."""
    return st.tuples(st.integers(1, max_channels), st.integers(min_size, max_size),
                     st.integers(min_size, max_size))


@st.composite
def conv_attrs(draw: st.DrawFn, in_channels: int = 8, max_out: int = 32) -> dict[str, Any]:
    """`conv` keyword arguments valid on an input of `in_channels` channels."""
    groups = draw(st.sampled_from(divisors(in_channels)))
    out = groups * draw(st.integers(1, max(1, max_out // groups)))
    return {"out": out, "kernel": draw(st.sampled_from([1, 3, 5])),
            "stride": draw(st.integers(1, 2)), "dilation": draw(st.integers(1, 2)),
            "groups": groups, "bias": draw(st.booleans())}


@dataclass
class _Builder:
    """Writes statements while tracking the shape of the running tensor `y`."""

    c: int
    h: int
    w: int
    lines: list[str] = field(default_factory=list)
    indent: int = 1

    def emit(self, text: str) -> None:
        self.lines.append("    " * self.indent + text)


def _width(draw: st.DrawFn, max_width: int) -> int:
    return draw(st.integers(1, max_width))


def _stride(draw: st.DrawFn, b: _Builder) -> int:
    return draw(st.sampled_from([1, 2])) if min(b.h, b.w) >= 2 else 1


def _shrink(b: _Builder, stride: int) -> None:
    """Spatial size after a 'same'-padded odd kernel at `stride`."""
    b.h, b.w = (b.h - 1) // stride + 1, (b.w - 1) // stride + 1


def _groups_and_width(draw: st.DrawFn, b: _Builder, max_width: int) -> tuple[int, int]:
    """Groups dividing the input channels, and an output width that they divide too."""
    groups = draw(st.sampled_from(divisors(b.c)[::-1]))  # favour real grouping
    return groups, groups * draw(st.integers(1, max(1, max_width // groups)))


def _grouped_stage(template: str):
    """A stage drawing a width, groups, kernel and stride for `template` (a pipe stage)."""

    def stage(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
        groups, out = _groups_and_width(draw, b, max_width)
        k, stride = draw(st.sampled_from([1, 3])), _stride(draw, b)
        b.emit("y = y >> " + template.format(out=out, k=k, stride=stride, groups=groups))
        b.c = out
        _shrink(b, stride)

    return stage


_conv = _grouped_stage("conv({out}, {k}, stride={stride}, groups={groups}) >> bn >> relu")
_unit_block = _grouped_stage("unit({out}, {k}, stride={stride}, groups={groups})")


def _dwconv(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    k, stride = draw(st.sampled_from([3, 5])), _stride(draw, b)
    b.emit(f"y = y >> dwconv({k}, stride={stride}) as depthwise >> bn >> relu6")
    _shrink(b, stride)


def _sepconv_block(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    k, stride, out = draw(st.sampled_from([3, 5])), _stride(draw, b), _width(draw, max_width)
    b.emit(f"y = y >> sepconv({out}, {k}, stride={stride}) >> bn >> relu")
    b.c = out
    _shrink(b, stride)


def _pool(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    kernel = draw(st.sampled_from([k for k in (2, 3) if k <= min(b.h, b.w)] or [1]))
    stride = draw(st.integers(1, kernel))
    pool = draw(st.sampled_from(["maxpool", "avgpool"]))
    b.emit(f"y = y >> {pool}({kernel}, stride={stride})")
    b.h, b.w = (b.h - kernel) // stride + 1, (b.w - kernel) // stride + 1


def _residual_block(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    k, times = draw(st.sampled_from([1, 3])), draw(st.integers(1, 3))
    b.emit(f"y = y >> residual({k}) * {times}")


def _residual_add(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    b.emit(f"y = y + (y >> conv({b.c}, 3) >> bn)")


def _concat(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    extra = _width(draw, max_width)
    b.emit(f"y = concat(y, y >> conv({extra}, 1) >> bn)")
    b.c += extra


def _slice(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    start = draw(st.integers(0, b.c - 1))
    stop = draw(st.integers(start + 1, b.c))
    b.emit(f"y = y[{start}:{stop}]")
    b.c = stop - start


def _se_block(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    reduced = draw(st.integers(1, max(1, b.c // 2)))
    gate = draw(st.sampled_from(["sigmoid", "hardsigmoid"]))
    b.emit(f'y = y >> squeeze_excite({reduced}, gate="{gate}")')


def _se_gate(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    reduced = draw(st.integers(1, max(1, b.c // 2)))
    b.emit(f"y = y * (y >> gap >> conv({reduced}, 1, bias=true) >> relu"
           f" >> conv({b.c}, 1, bias=true) >> sigmoid)")


def _learned_group_conv(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    """CondenseNet's pre-activated learned group 1x1 conv: G and C divide the input channels."""
    groups = draw(st.sampled_from(divisors(b.c)[::-1]))
    condense = draw(st.sampled_from(divisors(b.c)[::-1]))
    out = groups * draw(st.integers(1, max(1, max_width // groups)))
    b.emit(f"y = y >> bn >> relu >> learned_group_conv({out}, {groups}, {condense})")
    b.c = out


def _shuffle(draw: st.DrawFn, b: _Builder, max_width: int) -> None:
    groups = draw(st.sampled_from(divisors(b.c)[::-1]))
    b.emit(f"y = y >> channel_shuffle({groups})")


# One flat list, so every kind of stage is equally likely to be drawn.
_STAGES = [_conv, _unit_block, _dwconv, _sepconv_block, _pool, _residual_block, _residual_add,
           _concat, _slice, _se_block, _se_gate]
_STAGE_BY_NAME = {
    "conv": _conv, "unit": _unit_block, "dwconv": _dwconv, "sepconv": _sepconv_block,
    "pool": _pool, "residual_block": _residual_block, "residual_add": _residual_add,
    "concat": _concat, "slice": _slice, "se_block": _se_block, "se_gate": _se_gate,
    "learned_group_conv": _learned_group_conv, "shuffle": _shuffle,
}
DEFAULT_STAGES = tuple(name for name, fn in _STAGE_BY_NAME.items() if fn in _STAGES)
"""The stage kinds `networks()` draws by default."""
STAGES = tuple(_STAGE_BY_NAME)
"""Every stage kind: the defaults plus `learned_group_conv` (pre-activated, CondenseNet) and
`shuffle` (ShuffleNet's channel_shuffle)."""
HEADS = ("classifier", "split", "condensing")
"""How a network can end: std.arch's `classifier`; `split(member, S, mode)`, an ensemble of
S small members (SplitNet); a CondenseNet `condensing_linear` classifier."""

_MEMBER_BLOCK = '''
block member_net(x, width: int, classes: int) {
    "One ensemble member: conv-bn-relu and the standard classifier."
    return x >> conv(width, 3) as conv >> bn as bn >> relu >> classifier(classes)
}
'''


def _head(draw: st.DrawFn, b: _Builder, head: str, classes: int, dropout: str,
          max_width: int) -> str:
    """The return statement for `head`, and any extra block it needs (appended to blocks)."""
    if head == "split":
        members, width = draw(st.integers(2, 3)), _width(draw, max_width)
        mode = draw(st.sampled_from(["mean", "softmax_mean", "max", "softmax_max"]))
        b.emit(f"member = member_net({width}, {classes})")
        b.emit(f'return y >> split(member, {members}, mode="{mode}")')
        return _MEMBER_BLOCK
    if head == "condensing":
        keep = draw(st.sampled_from([k for k in (0.25, 0.5, 1.0) if int(b.c * k) >= 1]))
        b.emit(f"return y >> gap >> flatten >> condensing_linear({classes}, keep={keep})")
        return ""
    b.emit(f"return y >> classifier({classes}{dropout})")
    return ""


@st.composite
def networks(draw: st.DrawFn, max_stages: int = 6, max_width: int = 12,
             name: str = "random_net", stages: tuple[str, ...] = DEFAULT_STAGES,
             heads: tuple[str, ...] = ("classifier",)) -> str:
    """The text of a random valid .arch spec with one network called `name`, drawing its
    stages from the kinds named in `stages` (see STAGES) and its end from `heads` (HEADS)."""
    unknown = sorted(set(stages) - set(STAGES)) + sorted(set(heads) - set(HEADS))
    if unknown or not stages or not heads:
        raise ValueError(f"unknown or no stage kinds/heads {unknown}: "
                         f"stages are {', '.join(STAGES)}; heads are {', '.join(HEADS)}")
    kinds = [_STAGE_BY_NAME[kind] for kind in stages]
    c, h, w = draw(feature_shapes(max_channels=4, min_size=4, max_size=12))
    b = _Builder(c, h, w)
    b.emit(f"input x: {c}x{h}x{w}")
    b.c = _width(draw, max_width)
    b.emit(f"y = x >> conv({b.c}, 3) as stem >> bn >> relu")
    drawn = draw(st.lists(st.sampled_from(kinds), min_size=2, max_size=max_stages))
    scoped = draw(st.booleans())
    for i, stage in enumerate(drawn):
        if scoped and i % 2 == 0:
            b.emit(f"scope stage{i // 2 + 1} {{")
            b.indent += 1
        stage(draw, b, max_width)
        if scoped and (i % 2 == 1 or i == len(drawn) - 1):
            b.indent -= 1
            b.emit("}")
    classes = draw(st.integers(1, 10))
    dropout = draw(st.sampled_from(["", ", dropout=0.2"]))
    head = draw(st.sampled_from(heads)) if len(heads) > 1 else heads[0]
    blocks = _BLOCKS + _head(draw, b, head, classes, dropout, max_width)
    body = "\n".join(b.lines)
    return f'import "std.arch"\n{blocks}\nnetwork {name}() {{\n{body}\n}}\n'


def irs(**kwargs: Any) -> st.SearchStrategy[IR]:
    """Shape-checked IR of `networks(**kwargs)`."""
    import nasir

    return networks(**kwargs).map(lambda text: nasir.load(text, text=True))


def pass_networks(**kwargs: Any) -> st.SearchStrategy[str]:
    """`networks()` over every stage kind and head (STAGES, HEADS): what a pass should be
    tested on (learned group convs, channel shuffles, ensembles and condensing classifiers
    besides everything `networks()` draws)."""
    return networks(**{"stages": STAGES, "heads": HEADS, **kwargs})


def pass_irs(**kwargs: Any) -> st.SearchStrategy[IR]:
    """Shape-checked IR of `pass_networks(**kwargs)`."""
    import nasir

    return pass_networks(**kwargs).map(lambda text: nasir.load(text, text=True))
