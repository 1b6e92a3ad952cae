"""Cost reports for people (a table) and programs (JSON), always naming the convention."""

from __future__ import annotations

from typing import Any

from nasir.ir.graph import IR
from nasir.passes.costs import CostReport, Totals

_COLUMNS = ("params", "macs", "muls", "adds", "flops", "activations")


def _shape(shape: tuple[int, ...] | None) -> str:
    return "x".join(map(str, shape or ()))


def report_json(report: CostReport, ir: IR, per_layer: bool = False) -> dict[str, Any]:
    """One object: totals at the top level, the policy, and per-scope (and per-node) rows."""
    data: dict[str, Any] = {
        "network": report.network,
        "spec": ir.source,
        "input": {k: _shape(v) for k, v in report.inputs.items()},
        "output": _shape(ir.node(ir.output).shape),
        **report.total.as_dict(),
        "policy": {"name": report.policy.name, "description": report.policy.describe(),
                   "bn": report.policy.bn, "act": report.policy.act, "pool": report.policy.pool,
                   "eltwise": report.policy.eltwise, "condensed": report.policy.condensed},
        "parameters": ir.params,
        "scopes": {k: v.as_dict() for k, v in report.scopes.items()},
    }
    if len(data["input"]) == 1:
        data["input"] = next(iter(data["input"].values()))
    if per_layer:
        data["layers"] = [{"node": node_id, "op": ir.node(node_id).op,
                           "shape": _shape(ir.node(node_id).shape), **t.as_dict()}
                          for node_id, t in report.nodes.items()]
    return data


def human(n: int) -> str:
    """12,345,678 -> '12.35M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def report_table(report: CostReport, ir: IR, depth: int = 1, per_layer: bool = False) -> str:
    inputs = ", ".join(f"{k} {_shape(v)}" for k, v in report.inputs.items())
    lines = [f"{report.network}  (input {inputs}, output {_shape(ir.node(ir.output).shape)}, "
             f"batch 1)", _wrap(report.policy.describe()), ""]
    rows: list[tuple[str, str, Totals]] = []
    if per_layer:
        rows = [(node_id, ir.node(node_id).op, t) for node_id, t in report.nodes.items()]
    elif depth > 0:
        rows = _scope_rows(report, ir, depth)
    lines.append(_table(rows, report.total))
    return "\n".join(lines)


def _scope_rows(report: CostReport, ir: IR, depth: int) -> list[tuple[str, str, Totals]]:
    """Rows for scopes and top-level nodes at most `depth` deep, in network order."""
    rows, seen = [], set()
    for node in ir.nodes():
        key = "/".join(node.scope[:depth]) if len(node.scope) >= 1 else None
        if key and key not in seen:
            seen.add(key)
            kind = ir.scope_kinds.get(key, ("scope", ""))
            rows.append((key, kind[1] if kind[0] != "scope" else "", report.scopes[key]))
        elif not node.scope and node.op != "input":
            rows.append((node.id, node.op, report.nodes[node.id]))
    return rows


def _table(rows: list[tuple[str, str, Totals]], total: Totals) -> str:
    header = ("name", "op/block", *_COLUMNS)
    body = [(name, kind, *(f"{getattr(t, c):,}" for c in _COLUMNS)) for name, kind, t in rows]
    footer = ("total", "", *(f"{getattr(total, c):,}" for c in _COLUMNS))
    human_row = ("", "", *(human(getattr(total, c)) for c in _COLUMNS))
    table = [header, *body, footer, human_row]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        left = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        right = [cell.rjust(w) for cell, w in zip(row[2:], widths[2:], strict=True)]
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
