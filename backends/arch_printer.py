"""IR -> .arch text that parses and elaborates back to an equal IR.

The printed network is flat and explicit: every node is one statement naming its op, all
of its attributes and its label (`as name`), nested in `scope` statements that rebuild
the hierarchy. It is the canonical form of a spec after elaboration and transforms.

The output always re-parses: labels that are not plain names (.arch keywords such as
`true`, digits) are printed as strings or digit labels (`as "true"`, `scope 0 {`), variables
are fresh names that are no keyword, comments cannot be broken by a path holding a line
break, and floats use `repr` (which round-trips). A value .arch cannot write (inf, nan, a
string with control characters) raises `ValueError` naming it.
"""

from __future__ import annotations

import re
from functools import cache

from nasir.ir.graph import IR, Node
from nasir.parse.parser import arch_literal, quote_string

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")


@cache
def arch_keywords() -> frozenset[str]:
    """The words the .arch grammar reserves (`true`, `input`, `scope`, ...), read from it."""
    from nasir.parse.parser import _parser

    return frozenset(t.pattern.value for t in _parser().terminals
                     if t.pattern.type == "str" and _NAME.fullmatch(t.pattern.value))


def is_name(text: str) -> bool:
    """Whether `text` can be written as a bare .arch NAME."""
    return bool(_NAME.fullmatch(text)) and text not in arch_keywords()


def to_arch(ir: IR, flat: bool = False) -> str:
    """`ir` as .arch text: readable (one block per structure, see `to_readable_arch`) when
    that text elaborates back to an equal IR, else (or with `flat=True`) the flat form."""
    if not flat:
        try:
            text = to_readable_arch(ir)
        except ValueError:  # a name or value only the flat form handles (or refuses)
            text = None
        if text is not None and _reelaborates(text, ir):
            return text
    return to_flat_arch(ir)


def _reelaborates(text: str, ir: IR) -> bool:
    import nasir.api  # the front end sits above the backends: import at call time
    from nasir.errors import SpecError

    try:
        again = nasir.api.load(text, text=True, network=_network_name(ir.name))
    except SpecError:
        return False
    return again.signature() == ir.signature()


def to_readable_arch(ir: IR) -> str:
    """One `block` per distinct structure of a scope, attributes that differ between its
    instances lifted into typed parameters (defaulting to their most common value)."""
    from nasir.backends.arch_blocks import readable_arch

    return readable_arch(ir)


def to_flat_arch(ir: IR) -> str:
    """One statement per node, in nested `scope` statements."""
    printer = _Printer(ir)
    lines = [f"# {_comment(ir.name)}: elaborated by nasir from {_comment(ir.source or 'a spec')}"]
    if ir.params:
        params = ", ".join(f"{k}={_comment_value(v)}" for k, v in ir.params.items())
        lines.append(f"# parameters: {_comment(params)}")
    lines.append(f"network {_network_name(ir.name)}() {{")
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
                lines.append("    " * (len(open_scopes) + 1) + f"scope {_label(name)} {{")
                open_scopes.append(name)
            lines.append("    " * (len(open_scopes) + 1) + self.statement(node))
        while open_scopes:
            open_scopes.pop()
            lines.append("    " * (len(open_scopes) + 1) + "}")
        return lines

    def statement(self, node: Node) -> str:
        if node.op == "input":
            if not is_name(node.name) or node.name in self.taken:
                raise ValueError(f"input {node.id!r} cannot be printed as .arch: an input "
                                 "needs a unique name that is not an .arch keyword")
            self.var[node.id] = node.name
            self.taken.add(node.name)
            return f"input {node.name}: {'x'.join(map(str, node.attrs.shape))}"
        args = [self.var[i] for i in node.inputs]
        args += [f"{k}={arch_literal(v)}" for k, v in node.attrs.model_dump().items()
                 if v is not None]
        var = self._fresh(_variable(node.id))
        self.var[node.id] = var
        return f"{var} = {node.op}({', '.join(args)}) as {_label(node.name)}"

    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken or not is_name(name):
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


def _variable(node_id: str) -> str:
    """A readable variable name for a node: its id with `/` as `_` (`stage1_block2_conv`)."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", node_id.replace("/", "_")) or "v"
    base = f"v{base}" if base[0].isdigit() else base
    return f"{base}_" if base in arch_keywords() else base


def _label(name: str) -> str:
    """A node or scope label as .arch writes it: `conv`, `0`, or `"true"`."""
    return name if is_name(name) or _DIGITS.fullmatch(name) else quote_string(name)


def _network_name(name: str) -> str:
    """The network's name as a NAME (names do not reach the IR's signature)."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", name) or "network"
    base = f"n{base}" if base[0].isdigit() else base
    return base if is_name(base) else f"{base}_"


def _comment(text: str) -> str:
    """`text` on one comment line: line breaks and other unprintables escaped."""
    return "".join(ch if ch.isprintable() else
                   ch.encode("unicode_escape", "backslashreplace").decode("ascii") for ch in text)


def _comment_value(value: object) -> str:
    try:
        return arch_literal(value)
    except (TypeError, ValueError):  # only a comment: any readable form will do
        return repr(value)
