"""IR -> Graphviz diagram: scopes (blocks, cells, stages) as nested clusters, and on every
node its op, key attributes, output shape and costs.

`depth` collapses scopes deeper than that into one box labelled with their totals, which
keeps large networks (a NASNet-A Mobile has about a thousand ops) readable.
"""

from __future__ import annotations

import graphviz

from nasir.errors import SpecError
from nasir.ir.graph import IR, Node
from nasir.passes.costs import CostReport, Totals, count_costs
from nasir.report import human

_FILL = {"conv": "#dbe9f6", "linear": "#dbe9f6", "bn": "#eeeeee", "input": "#fff2cc",
         "add": "#e2f0d9", "concat": "#e2f0d9", "mul": "#e2f0d9"}
_CLUSTER_FILL = {"cell": "#fdf6e3", "block": "#f7f9fc", "network": "#ffffff", "scope": "#ffffff"}
_KEY_ATTRS = ("kernel", "stride", "groups", "dilation", "out", "p", "start", "stop", "mode")
FORMATS = ("svg", "png", "pdf", "dot")


def render(ir: IR, fmt: str = "svg", depth: int | None = None) -> bytes:
    """The diagram in `fmt` ('dot' gives the Graphviz source)."""
    if fmt not in FORMATS:
        raise SpecError(f"cannot render to '.{fmt}'", expected="a file ending in " +
                        ", ".join(f".{f}" for f in FORMATS))
    graph = to_graphviz(ir, depth)
    if fmt == "dot":
        return graph.source.encode()
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise SpecError("Graphviz's `dot` program is not installed",
                        expected="`apt-get install graphviz` (or render to .dot)") from None


def to_graphviz(ir: IR, depth: int | None = None) -> graphviz.Digraph:
    report = count_costs(ir)
    graph = graphviz.Digraph(ir.name, graph_attr={
        "rankdir": "TB", "fontname": "Helvetica", "fontsize": "11", "compound": "true",
        "label": _title(ir, report), "labelloc": "t"},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica",
                   "fontsize": "9", "fillcolor": "#ffffff"},
        edge_attr={"arrowsize": "0.6", "fontsize": "8", "fontname": "Helvetica"})
    ids = _visible_ids(ir, depth)
    _emit_scope(graph, ir, report, (), ids, depth)
    drawn: set[tuple[str, str]] = set()
    for node in ir.nodes():
        for src in node.inputs:
            a, b = ids[src], ids[node.id]
            if a != b and (a, b) not in drawn:
                drawn.add((a, b))
                graph.edge(_dot_id(a), _dot_id(b), label=_shape(ir.node(src).shape))
    return graph


def _visible_ids(ir: IR, depth: int | None) -> dict[str, str]:
    """Node id -> the id of the box it is drawn in: itself, or the scope `depth + 1` deep
    that is collapsed into one box."""
    if depth is None:
        return {n.id: n.id for n in ir.nodes()}
    return {n.id: ("/".join(n.scope[: depth + 1]) if len(n.scope) > depth else n.id)
            for n in ir.nodes()}


def _emit_scope(graph: graphviz.Digraph, ir: IR, report: CostReport, path: tuple[str, ...],
                ids: dict[str, str], depth: int | None) -> None:
    children: list[str] = []
    for node in ir.nodes():
        if node.scope == path:
            graph.node(_dot_id(node.id), _node_label(node, report.nodes[node.id]),
                       fillcolor=_FILL.get(node.op, "#ffffff"))
        elif node.scope[: len(path)] == path and len(node.scope) > len(path):
            child = node.scope[len(path)]
            if child not in children:
                children.append(child)
    for child in children:
        sub_path = (*path, child)
        key = "/".join(sub_path)
        kind, template = ir.scope_kinds.get(key, ("scope", child))
        if depth is not None and len(sub_path) > depth:
            graph.node(_dot_id(key), _collapsed_label(child, kind, template, report.scopes[key]),
                       shape="box3d", fillcolor=_CLUSTER_FILL.get(kind, "#ffffff"))
            continue
        with graph.subgraph(name=f"cluster_{_dot_id(key)}") as sub:
            title = child if template == child else f"{child}: {kind} {template}"
            sub.attr(label=f"{title}\n{_costs(report.scopes[key])}", style="rounded,filled",
                     fillcolor=_CLUSTER_FILL.get(kind, "#ffffff"), color="#999999",
                     fontsize="10")
            _emit_scope(sub, ir, report, sub_path, ids, depth)


def _node_label(node: Node, totals: Totals) -> str:
    attrs = node.attrs.model_dump()
    keys = [f"{k}={attrs[k]}" for k in _KEY_ATTRS if (k in attrs and attrs[k] not in (None, 1))
            or (k == "out" and k in attrs)]
    head = f"{node.name}: {node.op}" if node.name != node.op else node.op
    lines = [head]
    if keys:
        lines.append(" ".join(keys))
    lines.append(_shape(node.shape))
    if totals.params or totals.macs:
        lines.append(_costs(totals))
    return "\n".join(lines)


def _collapsed_label(name: str, kind: str, template: str, totals: Totals) -> str:
    return f"{name}\n{kind} {template}\n{_costs(totals)}"


def _costs(t: Totals) -> str:
    return f"{human(t.params)} params, {human(t.macs)} MACs"


def _title(ir: IR, report: CostReport) -> str:
    return (f"{ir.name}: {human(report.total.params)} params, "
            f"{human(report.total.macs)} MACs (policy {report.policy.name})")


def _shape(shape: tuple[int, ...] | None) -> str:
    return "x".join(map(str, shape or ()))


def _dot_id(node_id: str) -> str:
    return "n_" + node_id.replace("/", "__")
