"""Cost reports for people (a table) and programs (JSON), always naming the convention.

The table's rows add up: at any `--depth`, the rows printed plainly sum exactly to the total
in every column. A scope broken down into deeper scopes still shows its subtotal, but in
[brackets], indented above its parts and not added again; the nodes directly inside such a
scope (outside its child scopes) get one "(self)" row, so nothing is lost or counted twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nasir.ir.graph import IR
from nasir.passes.costs import CostReport, Totals

_COLUMNS = ("params", "macs", "muls", "adds", "flops", "activations")
SELF = "(self)"
LEGEND = ("[bracketed] rows are subtotals of the indented rows below them, not added again; "
          "the other rows add up to the total.")


def _shape(shape: tuple[int, ...] | None) -> str:
    return "x".join(map(str, shape or ()))


def report_json(report: CostReport, ir: IR, per_layer: bool = False) -> dict[str, Any]:
    """One object: totals at the top level, the policy, and per-scope (and per-node) rows.

    Every number in it is an int or a finite float (a non-finite or huge parameter value is
    written as a string), so `json.dumps(..., allow_nan=False)` always succeeds.
    """
    data: dict[str, Any] = {
        "network": report.network,
        "spec": ir.source,
        "input": {k: _shape(v) for k, v in report.inputs.items()},
        "output": _shape(ir.node(ir.output).shape),
        **report.total.as_dict(),
        "policy": {"name": report.policy.name, "description": report.policy.describe(),
                   "bn": report.policy.bn, "act": report.policy.act, "pool": report.policy.pool,
                   "eltwise": report.policy.eltwise, "condensed": report.policy.condensed},
        "parameters": jsonable(ir.params),
        "scopes": {k: v.as_dict() for k, v in report.scopes.items()},
    }
    if len(data["input"]) == 1:
        data["input"] = next(iter(data["input"].values()))
    if per_layer:
        data["layers"] = [{"node": node_id, "op": ir.node(node_id).op,
                           "shape": _shape(ir.node(node_id).shape),
                           "made_by": ir.node(node_id).made_by, **t.as_dict()}
                          for node_id, t in report.nodes.items()]
    return data


_MAX_JSON_INT_BITS = 1024  # beyond this an int is written as a string (Python caps int->str)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data: finite numbers, strings, bools, None, lists and objects.

    Non-finite floats become "inf"/"-inf"/"nan" and integers above 2**1024 a short
    description, so a report never carries `Infinity`/`NaN` (not JSON) nor an integer
    too long to print; anything else (a stage, a block) is written as its `str`.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if value.bit_length() > _MAX_JSON_INT_BITS:
            return f"<integer of {value.bit_length()} bits>"
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def human(n: int) -> str:
    """12,345,678 -> '12.35M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


@dataclass(frozen=True)
class Row:
    """One line of the breakdown table.

    `path` is a node id, a scope path, or a scope path + "/(self)"; `level` is its
    indentation. Rows with `summed=True` add up exactly to the report's total; the others
    are subtotals of the summed rows indented below them.
    """

    path: str
    kind: str
    level: int
    totals: Totals
    summed: bool = True

    @property
    def label(self) -> str:
        """What the table prints: the last part of the path, indented by level."""
        return "  " * self.level + self.path.rsplit("/", 1)[-1]


@dataclass
class _Scope:
    """A scope in the breakdown: its subtotal and its parts in network order."""

    path: tuple[str, ...]
    totals: Totals = field(default_factory=Totals)
    direct: Totals | None = None  # nodes directly inside, when the scope is broken down
    parts: list[_Scope | str] = field(default_factory=list)  # child scopes, node ids, SELF
    children: dict[str, _Scope] = field(default_factory=dict)


def breakdown(report: CostReport, ir: IR, depth: int = 1) -> list[Row]:
    """The table's rows for scopes at most `depth` deep, in network order (none for 0).

    Nodes outside every scope get a row each (the inputs included: their activations are in
    the total); a scope at `depth` (or one without child scopes) gets one summed row; a
    shallower scope with child scopes gets a bracketed subtotal row, then its parts.
    """
    if depth <= 0:
        return []
    root = _Scope(())
    for node in ir.nodes():
        totals = report.nodes[node.id]
        scope = root
        for name in node.scope[:depth]:
            child = scope.children.get(name)
            if child is None:
                child = scope.children[name] = _Scope((*scope.path, name))
                scope.parts.append(child)
            child.totals.add(totals)
            scope = child
        if scope is root:
            root.parts.append(node.id)
        elif len(node.scope) < depth:  # directly inside a scope that may be broken down
            if scope.direct is None:
                scope.direct = Totals()
                scope.parts.append(SELF)
            scope.direct.add(totals)
    rows: list[Row] = []
    for part in root.parts:
        if isinstance(part, _Scope):
            _scope_rows(part, ir, 0, rows)
        else:
            rows.append(Row(part, ir.node(part).op, 0, report.nodes[part]))
    return rows


def _scope_rows(scope: _Scope, ir: IR, level: int, rows: list[Row]) -> None:
    path = "/".join(scope.path)
    kind = ir.scope_kinds.get(path, ("scope", ""))
    label = kind[1] if kind[0] != "scope" else ""
    if not scope.children:
        rows.append(Row(path, label, level, scope.totals))
        return
    rows.append(Row(path, label, level, scope.totals, summed=False))
    for part in scope.parts:
        if isinstance(part, _Scope):
            _scope_rows(part, ir, level + 1, rows)
        elif scope.direct is not None:
            rows.append(Row(f"{path}/{SELF}", "", level + 1, scope.direct))


def report_table(report: CostReport, ir: IR, depth: int = 1, per_layer: bool = False) -> str:
    """The human report: header, policy, the breakdown (or one row per node), the total."""
    inputs = ", ".join(f"{k} {_shape(v)}" for k, v in report.inputs.items())
    lines = [f"{report.network}  (input {inputs}, output {_shape(ir.node(ir.output).shape)}, "
             f"batch 1)", _wrap(report.policy.describe()), ""]
    if per_layer:  # a "made by" column (the pass that made a node) once any pass made one
        rows = [Row(node_id, ir.node(node_id).op, 0, t) for node_id, t in report.nodes.items()]
        made_by = [ir.node(r.path).made_by or "" for r in rows]
        lines.append(_table(rows, report.total, full_names=True,
                            made_by=made_by if any(made_by) else None))
    else:
        rows = breakdown(report, ir, depth)
        lines.append(_table(rows, report.total))
    if not all(r.summed for r in rows):
        lines.append(_wrap(LEGEND))
    return "\n".join(lines)


def _cells(totals: Totals, summed: bool = True, pad: str = "") -> tuple[str, ...]:
    """The numbers of a row: plain (then `pad`, to line up digits) or in [brackets]."""
    cells = (f"{getattr(totals, c):,}" for c in _COLUMNS)
    return tuple(c + pad for c in cells) if summed else tuple(f"[{c}]" for c in cells)


def _table(rows: list[Row], total: Totals, full_names: bool = False,
           made_by: list[str] | None = None) -> str:
    """The aligned table; `made_by` (one entry per row) adds a "made by" text column."""
    pad = "" if all(r.summed for r in rows) else " "
    extra = ("made by",) if made_by is not None else ()
    blank = ("",) * len(extra)
    header = ("name", "op/block", *extra, *(c + pad for c in _COLUMNS))
    body = [(r.path if full_names else r.label, r.kind,
             *((made_by[i],) if made_by is not None else ()),
             *_cells(r.totals, r.summed, pad))
            for i, r in enumerate(rows)]
    footer = ("total", "", *blank, *_cells(total, pad=pad))
    human_row = ("", "", *blank, *(human(getattr(total, c)) + pad for c in _COLUMNS))
    table = [header, *body, footer, human_row]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    n_left = 2 + len(extra)

    def fmt(row: tuple[str, ...]) -> str:
        left = [cell.ljust(w) for cell, w in zip(row[:n_left], widths[:n_left], strict=True)]
        right = [cell.rjust(w) for cell, w in
                 zip(row[n_left:], widths[n_left:], strict=True)]
        return "  ".join(left + right).rstrip()

    rule = "-" * len(fmt(header))
    return "\n".join([fmt(header), rule, *map(fmt, body), rule, fmt(footer), fmt(human_row)])


def _wrap(text: str, width: int = 100) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)


def member_scopes(ir: IR) -> list[str]:
    """The top-level scopes whose outputs an `ensemble` output combines (net0, net1, ...)."""
    end = ir.node(ir.output)
    if end.op != "ensemble":
        return []
    scopes = [ir.node(i).scope[:1] for i in end.inputs]
    return [s[0] for s in scopes if s] if all(scopes) else []


def comparison(original: CostReport, report: CostReport, ir: IR, passes: list[str]) -> dict:
    """The transformed network's params and MACs against the original's, in total and per
    ensemble member, as ratios (what a pass such as `split` promises: about 1/S each)."""
    def ratio(new: int, old: int) -> float | None:
        return round(new / old, 4) if old else None

    before, after = original.total, report.total
    data: dict[str, Any] = {
        "passes": passes,
        "original": {"params": before.params, "macs": before.macs},
        "params_ratio": ratio(after.params, before.params),
        "macs_ratio": ratio(after.macs, before.macs),
        "members": {},
    }
    for scope in member_scopes(ir):
        member = report.scopes[scope]
        data["members"][scope] = {"params": member.params, "macs": member.macs,
                                  "params_ratio": ratio(member.params, before.params),
                                  "macs_ratio": ratio(member.macs, before.macs)}
    return data


def comparison_lines(data: dict, report: CostReport) -> str:
    """`comparison` as text under the table."""
    def cell(params: int, macs: int, p: float | None, m: float | None) -> str:
        def x(r: float | None) -> str:
            return f"({r:.3f}x)" if r is not None else "(-)"

        return f"{params:>14,} params {x(p):>9}  {macs:>16,} macs {x(m):>9}"

    old = data["original"]
    lines = [f"against the network before --pass {' --pass '.join(data['passes'])}:",
             f"  {'original':<10}{old['params']:>14,} params {'':>9}  "
             f"{old['macs']:>16,} macs",
             f"  {'result':<10}" + cell(report.total.params, report.total.macs,
                                        data["params_ratio"], data["macs_ratio"])]
    for scope, m in data["members"].items():
        lines.append(f"  {scope:<10}" + cell(m["params"], m["macs"], m["params_ratio"],
                                              m["macs_ratio"]))
    return "\n".join(lines)
