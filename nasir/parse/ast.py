"""The .arch abstract syntax tree: plain dataclasses, each with its source location.

The tree mirrors the grammar closely; meaning (scopes, shapes, ops) is given to it by the
elaborator, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nasir.errors import SourceLoc

# ---- expressions -------------------------------------------------------------------


@dataclass
class Expr:
    loc: SourceLoc


@dataclass
class Literal(Expr):
    value: int | float | bool | str


@dataclass
class Name(Expr):
    id: str


@dataclass
class ListExpr(Expr):
    items: list[Expr]


@dataclass
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass
class Compare(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass
class BoolOp(Expr):
    op: str  # "and" | "or"
    left: Expr
    right: Expr


@dataclass
class Not(Expr):
    operand: Expr


@dataclass
class Neg(Expr):
    operand: Expr


@dataclass
class Index(Expr):
    target: Expr
    index: Expr


@dataclass
class Slice(Expr):
    target: Expr
    start: Expr | None
    stop: Expr | None


@dataclass
class Attr(Expr):
    target: Expr
    name: str


@dataclass
class Arg:
    """One call argument: positional, `name=value`, or `*list`."""

    value: Expr
    name: str | None = None
    splat: bool = False
    loc: SourceLoc | None = None  # for `name=value`: the whole text, name first


@dataclass
class Call(Expr):
    """`f(args)`; in a pipe the piped tensor becomes the first argument."""

    func: str
    args: list[Arg]
    label: Expr | None = None
    repeat: Expr | None = None


@dataclass
class Pipe(Expr):
    source: Expr
    stages: list[Call]


@dataclass
class Cond(Expr):
    test: Expr
    then: Expr
    orelse: Expr


# ---- statements --------------------------------------------------------------------


@dataclass
class Stmt:
    loc: SourceLoc


@dataclass
class Assign(Stmt):
    targets: list[str]
    value: Expr


@dataclass
class Return(Stmt):
    value: Expr


@dataclass
class For(Stmt):
    targets: list[str]
    iterable: Expr
    body: list[Stmt]


@dataclass
class If(Stmt):
    branches: list[tuple[Expr, list[Stmt]]]
    orelse: list[Stmt] | None


@dataclass
class Scope(Stmt):
    label: Expr
    body: list[Stmt]


@dataclass
class Input(Stmt):
    name: str
    shape: tuple[int, ...] | Expr


@dataclass
class Default(Stmt):
    """`default op(name=value, ...)`: attribute defaults for later calls of `op` in this body."""

    op: str
    args: list[Arg]


# ---- top level ---------------------------------------------------------------------


@dataclass
class Param:
    """A definition's parameter; no type and no default means a tensor input."""

    name: str
    type: str | None
    default: Expr | None
    loc: SourceLoc

    @property
    def is_tensor(self) -> bool:
        return self.type is None and self.default is None


@dataclass
class Definition:
    kind: str  # "block" | "cell" | "network"
    name: str
    params: list[Param]
    body: list[Stmt]
    loc: SourceLoc
    doc: str = ""

    @property
    def inputs(self) -> list[Param]:
        return [p for p in self.params if p.is_tensor]

    @property
    def hyper(self) -> list[Param]:
        return [p for p in self.params if not p.is_tensor]


@dataclass
class Alias:
    """`network resnet32 = resnet_cifar(depth=32)`."""

    name: str
    target: str
    args: list[Arg]
    loc: SourceLoc


@dataclass
class Const:
    name: str
    value: Expr
    loc: SourceLoc


@dataclass
class Import:
    path: str
    loc: SourceLoc


@dataclass
class Module:
    file: str
    imports: list[Import] = field(default_factory=list)
    consts: list[Const] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)
    aliases: list[Alias] = field(default_factory=list)


class Body(list):
    """A body's statements, with the docstring that opened it (if any)."""

    def __init__(self, statements=(), doc: str = ""):
        super().__init__(statements)
        self.doc = doc
