"""IR -> Graphviz diagram: scopes (blocks, cells, stages) as nested clusters, and on every
node its op, key attributes, output shape and costs.

`depth` collapses scopes deeper than that into one box labelled with their totals, which
keeps large networks (a NASNet-A Mobile has about a thousand ops) readable.

Graphviz's `dot` lays the diagram out in a separate process, with two bounds: a diagram of
more than MAX_RENDER_NODES boxes is refused before `dot` starts (suggesting a --depth that
fits), and `dot` is stopped after RENDER_TIMEOUT_S seconds. Every name and label goes to
`dot` escaped, so no spec text can change the DOT syntax around it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

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

MAX_RENDER_NODES = 3000  # boxes one diagram may draw with `dot` (NASNet-A Large has ~1,400)
RENDER_TIMEOUT_S = 60.0  # seconds `dot` may run before it is stopped
DOT_PROGRAM = "dot"  # found on PATH
_STDERR_LINES = 5  # of dot's stderr quoted in an error


def render(ir: IR, fmt: str = "svg", depth: int | None = None, *,
           timeout_s: float = RENDER_TIMEOUT_S, max_nodes: int = MAX_RENDER_NODES) -> bytes:
    """The diagram in `fmt` ('dot' gives the Graphviz source and runs no program)."""
    if fmt not in FORMATS:
        raise SpecError(f"cannot render to '.{fmt}'", expected="a file ending in " +
                        ", ".join(f".{f}" for f in FORMATS))
    if depth is not None and depth < 0:
        raise SpecError(f"--depth {depth} is negative", expected="--depth 0 or more")
    if fmt != "dot":
        check_size(ir, depth, max_nodes)
    source = to_graphviz(ir, depth).source
    if fmt == "dot":
        return source.encode()
    return run_dot(source, fmt, timeout_s)


def box_count(ir: IR, depth: int | None) -> int:
    """How many boxes the diagram draws at `depth`: ops, and scopes collapsed into one."""
    return len(set(_visible_ids(ir, depth).values()))


def check_size(ir: IR, depth: int | None, max_nodes: int = MAX_RENDER_NODES) -> None:
    """Refuse, before `dot` runs, a diagram too large for it to lay out in reasonable time."""
    boxes = box_count(ir, depth)
    if boxes <= max_nodes:
        return
    shallower = [(d, box_count(ir, d)) for d in range(0, 4 if depth is None else depth)]
    fitting = [f"--depth {d} draws {n:,}" for d, n in shallower if n <= max_nodes][-2:]
    hint = ("a shallower diagram: " + ", ".join(fitting) + " boxes" if fitting
            else "a network with fewer ops at its top level")
    raise SpecError(f"the diagram of {ir.name} would draw {boxes:,} boxes, more than the "
                    f"limit of {max_nodes:,} (MAX_RENDER_NODES) that Graphviz's `dot` lays out "
                    "in reasonable time", expected=f"{hint}; or render to .dot, which runs no "
                    "layout")


def run_dot(source: str, fmt: str, timeout_s: float = RENDER_TIMEOUT_S) -> bytes:
    """Lay `source` out with `dot` into `fmt`; stopped after `timeout_s` seconds."""
    try:
        proc = subprocess.Popen([DOT_PROGRAM, f"-T{fmt}"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)  # its own group: a timeout kills it all
    except FileNotFoundError:
        raise SpecError("Graphviz's `dot` program is not installed",
                        expected="`apt-get install graphviz` (or render to .dot)") from None
    except OSError as err:
        raise SpecError(f"cannot run Graphviz's `dot`: {err.strerror or err}",
                        expected="a working Graphviz installation (or render to .dot)") from None
    with proc:
        try:
            out, err = proc.communicate(source.encode("utf-8"), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SpecError(f"Graphviz's `dot` did not finish within {timeout_s:g} s "
                            "(RENDER_TIMEOUT_S)", expected="a smaller diagram: --depth 1 or "
                            "--depth 2 (or render to .dot, which runs no layout)") from None
        finally:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode == 0:
        return out
    code = proc.returncode
    what = (f"was killed by signal {_signal_name(-code)}" if code < 0
            else f"failed with exit status {code}")
    lines = err.decode("utf-8", "replace").strip().splitlines()[:_STDERR_LINES]
    raise SpecError(f"Graphviz's `dot` {what}" + "".join(f"\n  dot: {ln}" for ln in lines),
                    expected="a working Graphviz installation (or render to .dot)")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def to_graphviz(ir: IR, depth: int | None = None) -> graphviz.Digraph:
    report = count_costs(ir)
    graph = graphviz.Digraph(_text(ir.name), graph_attr={
        "rankdir": "TB", "fontname": "Helvetica", "fontsize": "11", "compound": "true",
        "label": _text(_title(ir, report)), "labelloc": "t"},
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
                graph.edge(_dot_id(a), _dot_id(b), label=_text(_shape(ir.node(src).shape)))
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
            graph.node(_dot_id(node.id), _text(_node_label(node, report.nodes[node.id])),
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
            label = _collapsed_label(child, kind, template, report.scopes[key])
            graph.node(_dot_id(key), _text(label), shape="box3d",
                       fillcolor=_CLUSTER_FILL.get(kind, "#ffffff"))
            continue
        with graph.subgraph(name=graphviz.nohtml(f"cluster_{_dot_id(key)}")) as sub:
            title = child if template == child else f"{child}: {kind} {template}"
            sub.attr(label=_text(f"{title}\n{_costs(report.scopes[key])}"),
                     style="rounded,filled",
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
    """A node's DOT name: readable, escaped, and without ':' (which DOT reads as a port)."""
    return _text("n_" + node_id.replace("/", "__").replace(":", "%3A"))


def _text(text: str) -> str:
    """`text` as a DOT string that means just that text: never an HTML label (`<...>`), its
    backslashes literal (so none escapes the closing quote or reads as `\\N`), newlines as
    DOT's `\\n` (dot 2.43 drops a raw one after `\\"`), `&` as the entity dot turns back
    into `&` (a bare one can make its SVG invalid XML), other control characters replaced.
    The graphviz package adds the quotes and escapes quotes."""
    safe = "".join(c if c == "\n" or (ord(c) >= 32 and ord(c) != 127) else "\ufffd"
                   for c in text)
    escaped = safe.replace("\\", "\\\\").replace("\n", "\\n").replace("&", "&amp;")
    return graphviz.nohtml(escaped)
