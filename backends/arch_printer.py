"""IR -> .arch text that parses and elaborates back to an equal IR.

The printed network is flat and explicit: every node is one statement naming its op, all
of its attributes and its label (`as name`), nested in `scope` statements that rebuild
the hierarchy. It is the canonical form of a spec after elaboration and transforms.
"""

from __future__ import annotations

from nasir.ir.graph import IR, Node


def to_arch(ir: IR) -> str:
    printer = _Printer(ir)
    lines = [f"# {ir.name}: elaborated by nasir from {ir.source or 'a spec'}"]
    if ir.params:
        params = ", ".join(f"{k}={_literal(v)}" for k, v in ir.params.items())
        lines.append(f"# parameters: {params}")
    lines.append(f"network {ir.name}() {{")
    lines += printer.body()
    lines.append(f"    return {printer.var[ir.output]}")
    lines.append("}")
    return "\n".join(lines) + "\n"


class _Printer:
    def __init__(self, ir: IR):
        self.ir = ir
        self.var: dict[str, str] = {}
        self.taken: set[str] = set()

    def body(self) -> list[str]:
        lines: list[str] = []
        open_scopes: list[str] = []
        for node in self.ir.nodes():
            scope = list(node.scope)
            common = 0
            while (common < len(open_scopes) and common < len(scope)
                   and open_scopes[common] == scope[common]):
                common += 1
            while len(open_scopes) > common:
                open_scopes.pop()
                lines.append("    " * (len(open_scopes) + 1) + "}")
            while len(open_scopes) < len(scope):
                name = scope[len(open_scopes)]
                lines.append("    " * (len(open_scopes) + 1) + f"scope {name} {{")
                open_scopes.append(name)
            lines.append("    " * (len(open_scopes) + 1) + self.statement(node))
        while open_scopes:
            open_scopes.pop()
            lines.append("    " * (len(open_scopes) + 1) + "}")
        return lines

    def statement(self, node: Node) -> str:
        if node.op == "input":
            self.var[node.id] = node.name
            self.taken.add(node.name)
            return f"input {node.name}: {'x'.join(map(str, node.attrs.shape))}"
        args = [self.var[i] for i in node.inputs]
        args += [f"{k}={_literal(v)}" for k, v in node.attrs.model_dump().items()
                 if v is not None]
        var = self._fresh(node.id.replace("/", "_"))
        self.var[node.id] = var
        return f"{var} = {node.op}({', '.join(args)}) as {node.name}"

    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise TypeError(f"cannot print {value!r} as .arch")
