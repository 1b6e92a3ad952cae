"""IR -> readable Python: a class per block or cell and a straight-line `forward`.

The generated file imports only torch and the layer modules its ops lower to; its module
tree and parameter names are those of `nasir.compile`, so state dicts move freely between
the two. Instances of a block that differ only in constants (widths, strides) share one
class: the constants that vary become constructor arguments, named after the layer
argument they feed (`conv1_out_channels`), and the ones that never vary stay literals.

The file is code, and names, paths and values come from a spec, so nothing is pasted in
raw: strings are written as escaped literals, numbers so that they evaluate to the same
value (`float('inf')`, hex for huge ints), and every Python name is derived so that it is a
valid identifier that shadows nothing the file uses. Locals and constructor parameters
avoid keywords, `self`, the builtins the file calls and the imported names (`class` ->
`class_`, `0` -> `v0`, `__x` -> `v__x`); class names also avoid all builtins and each
other. Module attributes follow `program.attr_name`; children whose names are not plain
identifiers (`0`, `class`, `__x`) are added with `self.add_module("0", ...)` and read with
`getattr(self, "0")`.
"""

from __future__ import annotations

import builtins
import inspect
import keyword
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from nasir.backends.program import ScopeProgram, Step, last_uses, scope_program
from nasir.backends.pytorch import resolve
from nasir.gcpause import without_gc
from nasir.ir.graph import IR
from nasir.ops import Function, Layer

_BASE_IMPORTS = {"torch", "nn", "NF"}
_MODULE_NAMES = {"INPUT_SHAPES", "build"}
_USED_BUILTINS = {"self", "super", "float", "int", "getattr"}  # what the generated file calls
_MISSING = object()


class _Taken(set):
    """Names handed out, remembering per base the last suffix given (so `_fresh` is linear)."""

    def __init__(self, names=()) -> None:
        super().__init__(names)
        self.last: dict[str, int] = {}


@dataclass
class _Slot:
    """One constant an `__init__` line passes: a layer argument, or a child's argument."""

    path: tuple[str, ...]  # attribute names down to the layer, e.g. ("ghost1", "conv")
    arg: str  # the layer's argument name, e.g. "out_channels"
    value: Any
    keyword: str | None = None  # passed by keyword (else positionally)
    default: Any = _MISSING  # the callee's default, to omit when constant and equal

    @property
    def name(self) -> str:
        return "_".join((*self.path, self.arg))

    def candidates(self) -> list[str]:
        """Parameter names from shortest to fullest: `out_channels`, `ghost1_out_channels`,
        `conv_out_channels`, `ghost1_conv_out_channels`, then the whole path."""
        first, last = self.path[0], self.path[-1]
        names = [self.arg, f"{first}_{self.arg}", f"{last}_{self.arg}",
                 f"{first}_{last}_{self.arg}", self.name]
        return list(dict.fromkeys(names))


@dataclass
class _Entry:
    attr: str
    ref: str  # "nn.Conv2d", or "" for a child scope
    slots: list[_Slot]
    child: _Instance | None = None


@dataclass
class _Instance:
    """One scope of the network, before classes are chosen."""

    kind: tuple[str, str]
    entries: list[_Entry]
    forward: list[str]
    key: tuple = ()
    slots: list[_Slot] = field(default_factory=list)  # every entry's slots, in order

    def __post_init__(self) -> None:
        self.slots = [slot for entry in self.entries for slot in entry.slots]


@dataclass
class _Class:
    name: str
    params: list[str]  # constructor parameters, in order
    binding: list[tuple[str, Any]]  # per slot: ("param", name) or ("const", value)
    first_slot: dict[str, int]  # each parameter's first slot, where a parent reads its value


@dataclass
class _Module:
    imports: set[str] = field(default_factory=set)
    refs: dict[str, str] = field(default_factory=dict)  # dotted path -> name in the file
    imported: _Taken = field(default_factory=lambda: _Taken(_BASE_IMPORTS))
    groups: dict[tuple, list[_Instance]] = field(default_factory=lambda: defaultdict(list))
    classes: dict[tuple, _Class] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    used: _Taken = field(default_factory=_Taken)


@without_gc
def to_python(ir: IR, spec_hint: str = "", inplace: bool = True) -> str:
    """The full text of a Python module defining the network and `build()`; `inplace` as
    in `nasir.compile`."""
    out = _Module()
    program = scope_program(ir, inplace)
    _gather_imports(program, out)
    root = _collect(program, out, root=ir.name)
    _choose_classes(out)
    emitted: set[tuple] = set()
    _emit(root, out, emitted)
    root_class = out.classes[root.key].name
    shapes = {i.rsplit("/", 1)[-1]: ir.node(i).shape for i in ir.inputs}
    title = f"{ir.name}: generated by nasir from {ir.source or 'a spec'}{spec_hint}."
    header = [
        '"""' + _escape_doc(title),
        "",
        "Regenerate instead of editing: the .arch spec is the source of truth.",
        '"""',
        "",
        "import torch",
        "from torch import nn",
        "",
        "from nasir.layers import functional as NF",
        *sorted(out.imports),
        "",
        f"INPUT_SHAPES = {_literal(shapes)}",
    ]
    footer = [
        "",
        "",
        f"def build() -> {root_class}:",
        f'    """A freshly initialised {_escape_doc(ir.name)}."""',
        f"    return {root_class}()",
        "",
    ]
    return "\n".join(header) + "\n" + "".join(out.text) + "\n".join(footer)


# ---- pass 1: every scope as an instance with a structural key ----------------------------

def _gather_imports(prog: ScopeProgram, out: _Module) -> None:
    """Name every class and function the file will use before any local is named."""
    for step in prog.steps:
        if step.kind == "scope":
            _gather_imports(prog.children[step.child], out)
        elif isinstance(step.lowering, Layer):
            _ref(step.lowering.cls, out)
        elif isinstance(step.lowering, Function) and not step.lowering.infix:
            _ref(step.lowering.fn, out)


def _ref(path: str, out: _Module) -> str:
    """How the file names a registered op's class or function: `nn.Conv2d`, `NF.concat`,
    `torch.flatten`, or a name imported with `from module import name` (renamed when it
    would clash)."""
    if path in out.refs:
        return out.refs[path]
    module, _, short = path.rpartition(".")
    if path.startswith("torch.nn."):
        ref = f"nn.{path.removeprefix('torch.nn.')}"
    elif module == "nasir.layers.functional":
        ref = f"NF.{short}"
    elif module == "torch" or module.startswith("torch."):
        ref = path
    else:
        ref = _fresh(_identifier(short, out.imported | _USED_BUILTINS | _MODULE_NAMES),
                     out.imported)
        alias = "" if ref == short else f" as {ref}"
        out.imports.add(f"from {module} import {short}{alias}")
    out.refs[path] = ref
    return ref


def _child(attr: str) -> str:
    """How a method reads child module `attr` (`__x` would be name-mangled in a class)."""
    if attr.isidentifier() and not keyword.iskeyword(attr) and not attr.startswith("__"):
        return f"self.{attr}"
    return f"getattr(self, {attr!r})"


def _collect(prog: ScopeProgram, out: _Module, root: str | None = None) -> _Instance:
    local = _Locals(prog, out.imported | _USED_BUILTINS)
    entries: list[_Entry] = []
    forward: list[str] = []
    for step in prog.steps:
        if step.kind == "scope":
            child = _collect(prog.children[step.child], out)
            slots = [_Slot((step.name, *s.path), s.arg, s.value) for s in child.slots]
            entries.append(_Entry(step.name, "", slots, child))
            forward.append(_assign(local, step, f"{_child(step.name)}({local.args(step)})"))
        elif isinstance(step.lowering, Layer):
            entries.append(_layer_entry(step.name, step.lowering, out))
            forward.append(_assign(local, step, f"{_child(step.name)}({local.args(step)})"))
        else:
            forward.append(_assign(local, step, _function_source(step, local, out)))
    returns = ", ".join(local.get(o) for o in prog.outputs)
    params = ", ".join(local.get(i) for i in prog.inputs)
    forward = [f"def forward(self, {params}):", *forward, f"return {returns}"]
    kind = ("network", root) if root else prog.kind
    instance = _Instance(kind, entries, forward)
    instance.key = (kind, root is not None, tuple(_entry_key(e) for e in entries),
                    tuple(forward))
    out.groups[instance.key].append(instance)
    return instance


def _entry_key(entry: _Entry) -> tuple:
    shape = tuple((s.path, s.arg, s.keyword) for s in entry.slots)
    return (entry.attr, entry.ref, entry.child.key if entry.child else None, shape)


def _layer_entry(attr: str, layer: Layer, out: _Module) -> _Entry:
    cls = resolve(layer.cls)
    ref = _ref(layer.cls, out)
    names, defaults = _signature(cls)
    slots = [_Slot((attr,), names[i] if i < len(names) else f"arg{i}", value)
             for i, value in enumerate(layer.args)]
    slots += [_Slot((attr,), k, v, keyword=k, default=defaults.get(k, _MISSING))
              for k, v in layer.kwargs.items()]
    return _Entry(attr, ref, slots)


@cache
def _signature(cls) -> tuple[list[str], dict[str, Any]]:
    """A layer class's positional parameter names and its defaults (once per class)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return [], {}
    names = [k for k, p in params.items() if p.kind in (p.POSITIONAL_ONLY,
                                                          p.POSITIONAL_OR_KEYWORD)]
    return names, {k: p.default for k, p in params.items() if p.default is not p.empty}


# ---- pass 2: one class per structure; varying constants become parameters -----------------

def _choose_classes(out: _Module) -> None:
    used = out.used
    used |= out.imported | _MODULE_NAMES | _CLASS_RESERVED
    names = {key: _fresh(_class_name(group[0].kind[1]), used)
             for key, group in out.groups.items()}
    reserved = used | _USED_BUILTINS  # parameters shadow no class, import or used builtin
    for key, group in out.groups.items():
        slots = group[0].slots
        vectors = list(zip(*([repr(slot.value) for slot in inst.slots] for inst in group),
                           strict=True)) if slots else []
        first: dict[tuple, int] = {}  # varying vector -> its first slot
        for j, vector in enumerate(vectors):
            if len(set(vector)) > 1:
                first.setdefault(vector, j)
        params = _param_names([slots[j] for j in first.values()], reserved)
        param_of = dict(zip(first, params, strict=True))
        binding = [("param", param_of[v]) if v in param_of else ("const", slots[j].value)
                   for j, v in enumerate(vectors)]
        out.classes[key] = _Class(names[key], params, binding,
                                  dict(zip(params, first.values(), strict=True)))


def _param_names(slots: list[_Slot], reserved: set[str]) -> list[str]:
    """The shortest candidate name of each slot that no other slot could also take."""
    candidates = [slot.candidates() for slot in slots]
    claims = Counter(c for options in candidates for c in options)  # distinct per slot
    names: list[str] = []
    taken = _Taken()
    for options in candidates:
        name = next((c for c in options if claims[c] == 1), options[-1])
        names.append(_fresh(_identifier(name, reserved), taken, reserved))
    return names


# ---- pass 3: write each class once, children first ----------------------------------------

def _emit(instance: _Instance, out: _Module, emitted: set[tuple]) -> None:
    if instance.key in emitted:
        return
    emitted.add(instance.key)
    for entry in instance.entries:
        if entry.child is not None:
            _emit(entry.child, out, emitted)
    cls = out.classes[instance.key]
    init = [_init_line(entry, cls, offset, out)
            for entry, offset in zip(instance.entries, _offsets(instance.entries), strict=True)]
    body = [_wrap("    def __init__(", ["self", *cls.params], ") -> None:", 4),
            "        super().__init__()"]
    body += [_wrap(f"        {head}(", args, tail, 8) for head, args, tail in init]
    body += ["", f"    {instance.forward[0]}"]
    body += [f"        {line}" for line in instance.forward[1:]]
    doc = f'    """{_escape_doc(f"{instance.kind[0]} {instance.kind[1]}.")}"""'
    out.text.append(f"\n\nclass {cls.name}(nn.Module):\n{doc}\n\n" + "\n".join(body) + "\n")


def _offsets(entries: list[_Entry]) -> list[int]:
    offsets, total = [], 0
    for entry in entries:
        offsets.append(total)
        total += len(entry.slots)
    return offsets


def _wrap(head: str, args: list[str], tail: str, indent: int, width: int = 99) -> str:
    """`head(a, b)tail` on one line, or one argument per line when that is too long."""
    line = f"{head}{', '.join(args)}{tail}"
    if len(line) <= width or not args:
        return line
    pad = " " * (indent + 4)
    return head + "\n" + "".join(f"{pad}{a},\n" for a in args) + " " * indent + tail


def _init_line(entry: _Entry, cls: _Class, offset: int,
               out: _Module) -> tuple[str, list[str], str]:
    """(`self.conv = nn.Conv2d`, its arguments, `)`), or `self.add_module('0', ...)` for
    a child whose name is not a plain identifier."""
    def value(j: int) -> str:
        how, what = cls.binding[offset + j]
        return what if how == "param" else _literal(what)

    if entry.child is not None:
        child_cls = out.classes[entry.child.key]
        args = [f"{name}={value(child_cls.first_slot[name])}" for name in child_cls.params]
        ref = child_cls.name
    else:
        args = []
        for j, slot in enumerate(entry.slots):
            how, what = cls.binding[offset + j]
            if slot.keyword is None:
                args.append(value(j))
            elif how == "param" or slot.default is _MISSING or not _same(slot.default, what):
                args.append(f"{slot.keyword}={value(j)}")
        ref = entry.ref
    if _child(entry.attr).startswith("self."):
        return f"self.{entry.attr} = {ref}", args, ")"
    return f"self.add_module({entry.attr!r}, {ref}", args, "))"


def _same(a: Any, b: Any) -> bool:
    """Whether two constants are the same value (-0.0 is not 0.0; nan is nan)."""
    try:
        return type(a) is type(b) and repr(a) == repr(b)
    except Exception:  # a default that cannot be compared or printed: keep the argument
        return False


class _Locals:
    """Python variable names for the tensors a scope sees, read like the spec's names.

    A step whose first input dies there takes over that input's variable, as hand-written
    PyTorch rebinds `x = self.bn1(x)`: intermediate tensors are then freed as soon as they
    die instead of living until `forward` returns. A variable that carries such a chain is
    the scope's input name (`x`) or `y`; a value that is not carried on keeps its node's name.
    """

    def __init__(self, prog: ScopeProgram, reserved: set[str]):
        self.names: dict[str, str] = {}
        self.taken = _Taken()
        self.reserved = reserved  # never handed out
        self.carrier: dict[str, str] = {}  # output -> the dying input whose variable it takes
        for step, dying in zip(prog.steps, last_uses(prog), strict=True):
            if (len(step.outputs) == 1 and step.inputs and step.inputs[0] in dying
                    and step.inputs.count(step.inputs[0]) == 1):
                self.carrier[step.outputs[0]] = step.inputs[0]
        self.carried = set(self.carrier.values())
        single = len(prog.inputs) == 1
        for k, node_id in enumerate(prog.inputs):
            self._claim(node_id, "x" if single else f"x{k}")

    def _claim(self, node_id: str, base: str) -> str:
        name = _fresh(_identifier(base, self.reserved), self.taken, self.reserved)
        self.names[node_id] = name
        return name

    def get(self, node_id: str) -> str:
        return self.names[node_id]

    def args(self, step: Step) -> str:
        return ", ".join(self.names[i] for i in step.inputs)

    def bind(self, step: Step) -> str:
        if len(step.outputs) == 1 and step.outputs[0] in self.carrier:
            name = self.names[self.carrier[step.outputs[0]]]
            self.names[step.outputs[0]] = name
            return name
        if step.kind == "scope":  # name a block's result after the block
            bases = [step.name] if len(step.outputs) == 1 else [
                f"{step.name}_{k}" for k in range(len(step.outputs))]
        else:
            bases = [o.rsplit("/", 1)[-1] for o in step.outputs]
        bases = ["y" if o in self.carried else b for o, b in zip(step.outputs, bases,
                                                                  strict=True)]
        return ", ".join(self._claim(o, b) for o, b in zip(step.outputs, bases, strict=True))


def _assign(local: _Locals, step: Step, expr: str) -> str:
    return f"{local.bind(step)} = {expr}"


def _function_source(step: Step, local: _Locals, out: _Module) -> str:
    fn: Function = step.lowering
    ins = [local.get(i) for i in step.inputs]
    if fn.infix:
        return f" {fn.infix} ".join(ins)
    kwargs = [f"{k}={_literal(v)}" for k, v in fn.kwargs.items()]
    return f"{_ref(fn.fn, out)}({', '.join(ins + kwargs)})"


_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]")
_CLASS_RESERVED = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))


def _identifier(name: str, reserved: set[str] | frozenset[str] = frozenset()) -> str:
    """A valid identifier read like `name`: `v0` for `0`, `class_` for `class`, `nn_` for an
    imported `nn`; uniqueness is the caller's `_fresh`."""
    name = _NOT_IDENTIFIER.sub("_", name) or "v"
    if name[0].isdigit() or name.startswith("__"):  # `__x` would be name-mangled
        name = f"v{name}"
    while keyword.iskeyword(name) or name in reserved or name == "self":
        name = f"{name}_"
    return name


def _class_name(name: str) -> str:
    """CamelCase of a template or network name, as a valid identifier (`Scope0` for `0`)."""
    camel = _camel(_NOT_IDENTIFIER.sub("_", name))
    return f"Scope{camel}" if camel[0].isdigit() else camel


def _literal(value: Any) -> str:
    """Python source that evaluates to `value` (inf, nan, -0.0 and huge ints included)."""
    if value is None or isinstance(value, bool | str):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if abs(value) < 2**64 else ("-" if value < 0 else "") + hex(abs(value))
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({repr(value)!r})"
    if isinstance(value, tuple):
        items = [_literal(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, list):
        return f"[{', '.join(_literal(v) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} into generated Python")


def _escape_doc(text: str) -> str:
    """`text` for the inside of a triple-quoted docstring: quotes, backslashes, line breaks
    and unprintable characters are escaped, so a hostile path or name stays text."""
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def _fresh(base: str, taken: _Taken, also: set[str] | frozenset[str] = frozenset()) -> str:
    """`base`, or the first of `base_2`, `base_3`, ... in neither `taken` nor `also`."""
    name, k = base, taken.last.get(base, 1)
    while name in taken or name in also:
        k += 1
        name = f"{base}_{k}"
    taken.last[base] = k
    taken.add(name)
    return name


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Block"
