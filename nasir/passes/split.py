"""The `split` pass: SplitNet's division of one wide network into an ensemble of S members.

Zhao et al., "Towards Better Accuracy-efficiency Trade-offs: Divide and Co-training"
(arXiv 2011.14660; official code FreeformRobotics/Divide-and-Co-training): a network is
divided into S members of about 1/S its parameters each, whose logits `ensemble` combines.
Parameters of a conv grow with the square of its width, so each member's widths are the
original's divided by sqrt(S). Three ways to choose the member's widths:

- `gcd` (the default): the unit of the network is the GCD g of its *free* channel widths
  (every layer width except those fixed by the data: the input channels and the classifier's
  classes). The member's unit is g / sqrt(S) rounded to the nearest multiple of `align`
  (default 4), and every free width w becomes (w / g) * unit. One factor for every width
  keeps the widths tied through add, mul, concat and slices consistent, so the result is
  always shape-valid. CIFAR ResNet-110: 16 -> 12 -> 8 for S = 2, 4; ImageNet ResNet-50:
  64 -> 44 -> 32 -> 24 for S = 2, 4, 8, the paper's Table 1.
- `by=PARAM`: elaborate the spec again with its int parameter PARAM divided as the official
  WRN divides its widen factor, k' = int(max(k / sqrt(S) + 0.4, 1)) (10 -> 7 -> 5).
- `groups=true`: divide every grouped conv's group count by S (ResNeXt's cardinality), and
  the widths those groups span with it; other widths stay.

The members sit in scopes net0..net{S-1}, all reading the network's inputs, and one
`ensemble(mode)` node combines their outputs: the layout of the language's `split`
construct (`x >> split(member, S)`), which is built by the same `ensemble_of` function.
An IR that already is an ensemble of one member (`splitnet_wrn28_10_c100_s1`) has that
member divided. Limits: 2 <= S <= MAX_SPLIT (64); align from 1 to MAX_ALIGN (64).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import reduce
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from nasir.errors import SpecError, shown
from nasir.ir.graph import IR, Node, scope_path
from nasir.ops import ShapeError, get_op
from nasir.passes.ghost import check_flags, check_int, protected_layers
from nasir.passes.pipeline import register_pass

if TYPE_CHECKING:
    from networkx.utils import UnionFind

MAX_SPLIT = 64  # members; the paper divides into 2, 4 or 8
MAX_ALIGN = 64
MEMBER = "net{}"  # the scope of member i, as the `split` construct names it
ENSEMBLE = "ensemble"  # the node that combines the members' outputs


# -- the ensemble layout, shared with the language's `split` construct

def member_scope(index: int) -> str:
    """The scope of member `index`: net0, net1, ... (the official SplitNet's `nets[i]`)."""
    return MEMBER.format(index)


def ensemble_of(member: IR, count: int, mode: str = "mean", name: str | None = None) -> IR:
    """`count` copies of `member` in scopes net0.., all reading its inputs, then `ensemble`."""
    out = IR(name or member.name, member.params, member.source)
    for node_id in member.inputs:
        out.add(member.node(node_id))
    kind = member.scope_kinds.get("", ("block", f"{member.name}_member"))
    outputs = []
    for index in range(count):
        prefix = member_scope(index)
        out.scope_kinds[prefix] = kind
        for path, scope_kind in member.scope_kinds.items():
            if path:
                out.scope_kinds[f"{prefix}/{path}"] = scope_kind
        rename = {i: i for i in member.inputs}
        for node in member.nodes():
            if node.op == "input":
                continue
            rename[node.id] = scope_path([prefix], node.id)
            out.add(replace(node, id=rename[node.id], made_by="split",
                            inputs=tuple(rename[i] for i in node.inputs)))
        outputs.append(rename[member.output])
    attrs = get_op("ensemble").Attrs(mode=mode)
    shape = member.node(member.output).shape
    ensemble = out.add(Node(ENSEMBLE, "ensemble", attrs, tuple(outputs),
                            member.node(member.output).loc, shape, made_by="split"))
    out.output = ensemble.id
    return out


def single_member(ir: IR) -> tuple[IR, str] | None:
    """(the member, its ensemble mode) if `ir` is an ensemble of one member in net0."""
    if ir.output is None or ir.node(ir.output).op != "ensemble":
        return None
    end = ir.node(ir.output)
    prefix = member_scope(0) + "/"
    body = [n for n in ir.nodes() if n.op != "input" and n.id != end.id]
    if len(end.inputs) != 1 or not all(n.id.startswith(prefix) for n in body):
        return None
    member = IR(ir.name, ir.params, ir.source)
    for node in ir.nodes():
        if node.op == "input":
            member.add(node)
    strip = {i: i for i in ir.inputs}
    for node in body:
        strip[node.id] = node.id[len(prefix):]
        member.add(replace(node, id=strip[node.id],
                           inputs=tuple(strip[i] for i in node.inputs)))
    member.output = strip[end.inputs[0]]
    member.scope_kinds = {k[len(prefix):]: v for k, v in ir.scope_kinds.items()
                          if k.startswith(prefix)}
    if member_scope(0) in ir.scope_kinds:
        member.scope_kinds[""] = ir.scope_kinds[member_scope(0)]
    return member, end.attrs.mode


# -- choosing the member's widths

def _channels(node: Node) -> int | None:
    """Channels of a feature map, features of a flat vector."""
    return node.shape[0] if node.shape else None


def tied_classes(ir: IR) -> UnionFind:
    """Tensors that must keep equal channels (`classes[id]` is the class of a tensor): the
    inputs and output of every op that has no width of its own and keeps the channels of
    all its inputs."""
    from networkx.utils import UnionFind  # only transforms need it: keep it off start-up

    classes = UnionFind()
    for node in ir.nodes():
        definition = get_op(node.op)
        if definition.width_attr or definition.channel_attrs or _channels(node) is None:
            continue
        ins = [i for i in node.inputs if _channels(ir.node(i)) is not None]
        if ins and all(_channels(ir.node(i)) == _channels(node) for i in ins):
            classes.union(node.id, *ins)
    return classes


def fixed_tensors(ir: IR, classes: UnionFind) -> set[str]:
    """Class roots whose width the data fixes: the inputs' and the classifier's."""
    fixed = {classes[i] for i in ir.inputs}
    fixed |= {classes[i] for i in protected_layers(ir, keep_first=False, keep_last=True)}
    return fixed


def _channel_names(op: str) -> list[str]:
    """The op's attributes counted in channels: its width, then slice-like bounds."""
    definition = get_op(op)
    return [*([definition.width_attr] if definition.width_attr else []),
            *definition.channel_attrs]


def _widths(ir: IR, scaled: Callable[[Node], bool]) -> list[int]:
    """The nonzero width and channel attributes of every node whose widths scale."""
    return [getattr(node.attrs, name) for node in ir.nodes() if scaled(node)
            for name in _channel_names(node.op) if getattr(node.attrs, name)]


def free_widths(ir: IR) -> Callable[[Node], bool]:
    """Which nodes carry free widths: layers whose output is not fixed by the data, and
    slices of tensors that are not."""
    classes = tied_classes(ir)
    fixed = fixed_tensors(ir, classes)

    def scaled(node: Node) -> bool:
        definition = get_op(node.op)
        if definition.width_attr:
            return classes[node.id] not in fixed
        if definition.channel_attrs:  # a slice scales with the tensor it reads
            return classes[node.inputs[0]] not in fixed
        return False

    return scaled


def gcd_unit(ir: IR, count: int, align: int,
             scaled: Callable[[Node], bool] | None = None) -> tuple[int, int]:
    """(g, the member's unit): the GCD of the free widths, and g / sqrt(count) rounded to
    the nearest multiple of `align` that keeps every group count dividing its widths (or of
    that group step alone, when the multiple of `align` is not between 0 and g).
    `scaled` is `free_widths(ir)`, when the caller has it."""
    scaled = scaled or free_widths(ir)
    widths = _widths(ir, scaled)
    if not widths:
        raise SpecError("pass 'split': the network has no free channel width to divide "
                        "(only the input's and the classifier's)",
                        expected="a network with convolutions or hidden linear layers")
    g = reduce(math.gcd, widths)
    target = g / math.sqrt(count)
    groups = _group_step(ir, scaled, g)
    for step in (math.lcm(align, groups), groups):
        unit = round(target / step) * step
        if 0 < unit < g:
            return g, unit
    raise SpecError(f"pass 'split': the free channel widths have GCD {g}, too small to divide "
                    f"by sqrt({count})" + (f" in steps of {groups} (group counts)"
                                           if groups > 1 else ""),
                    expected="widths with a larger common factor, or by=PARAM to elaborate "
                             "the spec again with a smaller width parameter")


def _group_step(ir: IR, scaled: Callable[[Node], bool], g: int) -> int:
    """The unit must be a multiple of this for every group count (not depthwise) to keep
    dividing the scaled widths it splits: the input's channels and the layer's width."""
    step = 1
    for node in ir.nodes():
        attr = get_op(node.op).groups_attr
        if not attr or not node.inputs:
            continue
        groups = getattr(node.attrs, attr)
        source = ir.node(node.inputs[0])
        if groups == 1 or groups == source.shape[0]:
            continue
        widths = [node.shape[0]] if scaled(node) else []
        if _reads_scaled(ir, source, scaled):
            widths.append(source.shape[0])
        for width in widths:
            step = math.lcm(step, groups // math.gcd(groups, width // g))
    return step


def _reads_scaled(ir: IR, node: Node, scaled: Callable[[Node], bool]) -> bool:
    """Whether `node`'s channels scale: it is scaled, or a width-less op on scaled inputs."""
    seen = set()
    todo = [node]
    while todo:
        current = todo.pop()
        if current.id in seen or current.op == "input":
            continue
        seen.add(current.id)
        definition = get_op(current.op)
        if definition.width_attr or definition.channel_attrs:
            if scaled(current):
                return True
            continue
        todo.extend(ir.node(i) for i in current.inputs)
    return False


def scale_widths(ir: IR, num: int, den: int,
                 scaled: Callable[[Node], bool] | None = None) -> IR:
    """`ir` with every free width w (and slice bound) rebuilt as w * num / den, which must
    be exact: one factor for every width keeps tied widths consistent. `scaled` is
    `free_widths(ir)`, when the caller has it."""
    scaled = scaled or free_widths(ir)
    changes: dict[str, dict[str, Any]] = {}
    for node in ir.nodes():
        if not scaled(node):
            continue
        for name in _channel_names(node.op):
            value = getattr(node.attrs, name)
            if value * num % den:
                raise SpecError(f"pass 'split': {name}={value} of {shown(node.id)} is not a "
                                f"multiple of the width unit {den}", node.loc)
            changes.setdefault(node.id, {})[name] = value * num // den
    return _rebuilt(ir, changes)


# -- the pass

def _rebuilt(ir: IR, changes: dict[str, dict[str, Any]]) -> IR:
    """`ir` with attribute changes applied, validated, and shapes inferred again; a depthwise
    conv (groups equal to its input channels) stays depthwise."""
    out = IR(ir.name, ir.params, ir.source)
    out.scope_kinds = dict(ir.scope_kinds)
    for node in ir.nodes():
        update = dict(changes.get(node.id, {}))
        ins = [out.node(i).shape for i in node.inputs]
        attr = get_op(node.op).groups_attr
        if attr and ins and getattr(node.attrs, attr) == ir.node(node.inputs[0]).shape[0] > 1:
            update[attr] = ins[0][0]
        attrs = _validated(node, update) if update else node.attrs
        if node.op != "input":
            try:
                shape = tuple(get_op(node.op).infer(attrs, ins))
            except ShapeError as exc:
                raise SpecError(f"pass 'split': {node.op} at {shown(node.id)} no longer fits "
                                f"its inputs: {exc.message}", node.loc,
                                expected="widths the division keeps consistent (try "
                                         "another align, or by=PARAM)") from None
            changed = update and attrs != node.attrs
            node = replace(node, attrs=attrs, shape=shape,
                           made_by="split" if changed else node.made_by)
        out.add(node)
    out.output = ir.output
    return out


def _validated(node: Node, update: dict[str, Any]) -> Any:
    try:
        return type(node.attrs).model_validate({**node.attrs.model_dump(), **update})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SpecError(f"pass 'split' gives {node.op} at {shown(node.id)} invalid attributes: "
                        f"{first['msg'].lower()}", node.loc) from None


def divide_gcd(member: IR, count: int, align: int) -> IR:
    """Every free width w becomes (w / g) * unit (see the module docstring)."""
    scaled = free_widths(member)
    g, unit = gcd_unit(member, count, align, scaled)
    return scale_widths(member, unit, g, scaled)


def divide_groups(member: IR, count: int) -> IR:
    """Divide every grouped layer's groups by `count`, with the widths its groups span."""
    classes = tied_classes(member)
    spanned: set[str] = set()  # classes of the tensors grouped layers read and write
    grouped: set[str] = set()
    for node in member.nodes():
        attr = get_op(node.op).groups_attr
        if not attr or not get_op(node.op).width_attr:
            continue
        groups = getattr(node.attrs, attr)
        if groups > 1 and groups != _channels(member.node(node.inputs[0])):
            if groups % count:
                raise SpecError(f"pass 'split': groups={groups} of {shown(node.id)} is not "
                                f"divisible by S={count}", node.loc,
                                expected="S dividing every group count (e.g. ResNeXt 32x4d "
                                         "with S = 2, 4, 8)")
            grouped.add(node.id)
            spanned |= {classes[node.id], classes[node.inputs[0]]}
    if not grouped:
        raise SpecError("pass 'split' with groups=true: the network has no grouped conv",
                        expected="a ResNeXt-like network, or split:S=N without groups")
    fixed = fixed_tensors(member, classes)
    changes: dict[str, dict[str, Any]] = {}
    for node in member.nodes():
        definition = get_op(node.op)
        root = classes[node.id]
        if definition.width_attr and root in spanned and root not in fixed:
            width = getattr(node.attrs, definition.width_attr)
            if width % count:
                raise SpecError(f"pass 'split': width {width} of {shown(node.id)} is not "
                                f"divisible by S={count}", node.loc)
            changes[node.id] = {definition.width_attr: width // count}
        if node.id in grouped:
            attr = definition.groups_attr
            changes.setdefault(node.id, {})[attr] = getattr(node.attrs, attr) // count
    return _rebuilt(member, changes)


def divide_by_param(ir: IR, member_of: Callable[[IR], tuple[IR, str]], param: str,
                    count: int) -> tuple[IR, str]:
    """Elaborate `ir`'s spec again with `param` divided as the official WRN's widen factor."""
    value = ir.params.get(param)
    if isinstance(value, bool) or not isinstance(value, int):
        known = [k for k, v in ir.params.items() if isinstance(v, int) and not isinstance(v, bool)]
        raise SpecError(f"pass 'split': by={shown(param)} is not an int parameter of network "
                        f"{shown(ir.name)}",
                        expected=f"one of: {', '.join(known) or '(it has none)'}")
    if not ir.source or ir.source.startswith("<"):
        raise SpecError(f"pass 'split': by={shown(param)} needs the spec file of "
                        f"{shown(ir.name)} to elaborate it again, and it has none",
                        expected="a network loaded from a file or by a shipped name")
    import nasir.api  # the front end sits above the passes: import at call time

    divided = int(max(value / math.sqrt(count) + 0.4, 1.0))
    shape = ir.node(ir.inputs[0]).shape if len(ir.inputs) == 1 else None
    again = nasir.api.load(ir.source, network=ir.name, input=shape,
                           **{**ir.params, param: divided})
    return member_of(again)


@register_pass("split")
def split(ir: IR, S: int = 2, by: str | None = None, groups: bool = False, align: int = 4,
          mode: str | None = None) -> IR:
    """Contract: an ensemble of S members in scopes net0..net{S-1}, each the network with its
    free widths divided (GCD rule / by=PARAM / groups=true), all reading the network's
    inputs, combined by `ensemble(mode)` (default mean, or the one-member ensemble's mode)."""
    expected = "split:S=4 (or split:S=2,by=widen, split:S=4,groups=true)"
    count = check_int("split", "S", S, (2, MAX_SPLIT), "MAX_SPLIT", expected)
    align = check_int("split", "align", align, (1, MAX_ALIGN), "MAX_ALIGN", expected)
    check_flags("split", groups=groups)
    if by is not None and groups:
        raise SpecError("pass 'split': by= and groups=true are two different rules",
                        expected="one of split:S=4, split:S=2,by=widen, split:S=4,groups=true")

    def member_of(network: IR) -> tuple[IR, str]:
        found = single_member(network)
        if found is None and network.node(network.output).op == "ensemble":
            raise SpecError("pass 'split': the network already is an ensemble of "
                            f"{len(network.node(network.output).inputs)} members",
                            expected="a single network, or an ensemble of one member")
        return found or (network, "mean")

    if by is not None:
        member, ensemble_mode = divide_by_param(ir, member_of, str(by), count)
    else:
        member, ensemble_mode = member_of(ir)
        member = divide_groups(member, count) if groups else divide_gcd(member, count, align)
    if mode is not None:
        try:
            get_op("ensemble").Attrs(mode=mode)
        except ValidationError:
            raise SpecError(f"pass 'split': mode={shown(repr(mode))} is not an ensemble mode",
                            expected="mean, softmax_mean, max or softmax_max") from None
        ensemble_mode = mode
    return ensemble_of(member, count, ensemble_mode, name=ir.name)
