"""Parse .arch text into the AST, turning Lark's exceptions into located `SpecError`s."""

from __future__ import annotations

import hashlib
import io
import math
import sys
from dataclasses import replace
from functools import cache
from importlib import resources

import lark
from lark import Lark, Token, Transformer_NonRecursive, Tree, v_args
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from nasir.cache import cached
from nasir.errors import SourceLoc, SpecError, shown
from nasir.limits import MAX_INT, MAX_NESTING, MAX_SPEC_BYTES
from nasir.parse import ast

# What a person would call each terminal the parser may expect.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": 'a string ("...")',
    "SHAPE": "a shape such as 3x224x224",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "SEMICOLON": "';'",
    "EQUAL": "'='",
    "MINUS": "'-'",
    "$END": "end of file",
}
_KEYWORDS = ("block", "cell", "network", "import", "let", "return", "for", "in", "if", "then",
             "elif", "else", "scope", "input", "as", "and", "or", "not", "true", "false",
             "default")


_OPTIONS = {"parser": "lalr", "propagate_positions": True, "start": ["start", "expr"],
            "maybe_placeholders": True}


@cache
def _parser() -> Lark:
    """The LALR parser of grammar/arch.lark, its tables loaded from nasir's cache when an
    entry for this exact grammar, Lark version and options is there (building them is most
    of a small run's start-up), else built and stored."""
    text = resources.files("nasir.grammar").joinpath("arch.lark").read_text()
    key = hashlib.sha256(repr((text, lark.__version__, _OPTIONS)).encode()).hexdigest()
    parser, _ = cached(f"arch-lalr-{key[:32]}.pickle", lambda: Lark(text, **_OPTIONS),
                       lambda data: Lark.load(io.BytesIO(data)), _saved)
    return parser


def _saved(parser: Lark) -> bytes:
    buffer = io.BytesIO()
    parser.save(buffer)
    return buffer.getvalue()


def source_lines(text: str) -> list[str]:
    """The lines of `text` as Lark numbers them: split on "\\n" only, a trailing "\\r" dropped.

    `str.splitlines` also splits on form feeds, U+2028 and other separators that Lark does
    not count, which would put an excerpt on the wrong line.
    """
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def parse_text(text: str, file: str = "<string>") -> ast.Module:
    """Parse a whole .arch file (a leading UTF-8 byte order mark is ignored)."""
    text = _checked_text(text, file)
    lines = source_lines(text)
    return tree_to_ast(_parse(text, file, lines, "start"), file, lines)


def parse_value(text: str, what: str = "--set value") -> ast.Expr:
    """Parse one expression (a `--set name=value` right-hand side)."""
    text = _checked_text(text, what)
    lines = source_lines(text)
    return tree_to_ast(_parse(text, what, lines, "expr"), what, lines)


def _checked_text(text: str, file: str) -> str:
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{shown(file)} has {len(text):,} characters, more than the limit of "
                        f"{MAX_SPEC_BYTES:,} (MAX_SPEC_BYTES)",
                        expected="a smaller spec: split it into files joined by `import`")
    return text[1:] if text.startswith("\ufeff") else text


def _parse(text: str, file: str, lines: list[str], start: str) -> Tree:
    try:
        tree = _parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, file, lines) from None
    except LarkError as exc:  # not expected from the LALR parser; still the spec's fault
        raise SpecError(f"cannot parse {shown(file)}: {shown(str(exc))}") from None
    return tree


def tree_to_ast(tree: Tree, file: str, lines: list[str]):
    """The AST of a Lark parse tree of `file` (whose text has `lines`), after checking its
    nesting against MAX_NESTING."""
    _check_nesting(tree, file, lines)
    try:
        return _ToAst(file, lines).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, SpecError):
            raise exc.orig_exc from None
        loc = _ToAst(file, lines)._loc(getattr(exc.obj, "meta", exc.obj))
        raise SpecError(f"cannot read this construct: {shown(str(exc.orig_exc))}", loc) from None


# Tree nodes that are one level of nesting in the sense of MAX_NESTING: bodies, brackets,
# calls and operators. Statements, argument lists and clauses are not levels of their own.
_LEVELS = frozenset({"body", "list", "paren", "call_args", "index", "attr", "cond", "neg",
                     "not_op", "pow", "binop", "compare", "or_op", "and_op", "pipe"})
# Left-associative chains (`a + b - c`, `x >> f >> g`) are one level however long: the left
# operand of a node of the same kind continues the chain instead of nesting.
_CHAINS = frozenset({"binop", "pipe"})


def _check_nesting(tree: Tree, file: str, lines: list[str]) -> None:
    """Raise at the first point nested deeper than MAX_NESTING, without recursing."""
    stack: list[tuple[Tree, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        for i, child in enumerate(node.children):
            if not isinstance(child, Tree):
                continue
            if child.data not in _LEVELS or (i == 0 and child.data == node.data
                                             and child.data in _CHAINS):
                child_depth = depth
            else:
                child_depth = depth + 1
            if child_depth > MAX_NESTING:
                loc = replace(_ToAst(file, lines)._loc(child.meta), length=1)
                raise SpecError(f"nesting deeper than {MAX_NESTING} levels (MAX_NESTING)", loc,
                                expected="fewer nested brackets, bodies or operators: "
                                "name intermediate results with `=`")
            stack.append((child, child_depth))


def _syntax_error(exc: UnexpectedInput, file: str, lines: list[str]) -> SpecError:
    line, col = max(exc.line, 1), max(exc.column, 1)
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    if isinstance(exc, UnexpectedCharacters):
        loc = SourceLoc(file, line, col, text, 1)
        char = text[col - 1] if col - 1 < len(text) else "?"
        return SpecError(f"unexpected character {char!r}", loc, _expected(exc.allowed))
    if isinstance(exc, UnexpectedEOF):
        return SpecError("unexpected end of file", _end_loc(file, lines), _expected(exc.expected))
    if not isinstance(exc, UnexpectedToken):
        return SpecError("syntax error", SourceLoc(file, line, col, text, 1))
    token = exc.token
    if token.type == "$END":
        return SpecError("unexpected end of file", _end_loc(file, lines),
                         _expected(exc.accepts or exc.expected))
    loc = SourceLoc(file, line, col, text, max(1, len(str(token))))
    shown_token = str(token)
    what = (f"keyword '{shown_token}'" if shown_token in _KEYWORDS
            else f"'{shown(shown_token, limit=60)}'")
    return SpecError(f"unexpected {what}", loc, _expected(exc.accepts or exc.expected))


def _end_loc(file: str, lines: list[str]) -> SourceLoc:
    """Just after the last line that holds anything but blanks."""
    for number in range(len(lines), 0, -1):
        text = lines[number - 1]
        if text.strip():
            return SourceLoc(file, number, len(text.rstrip()) + 1, text, 1)
    return SourceLoc(file, max(1, len(lines)), 1, "", 1)


def _expected(names) -> str:
    words = sorted({_word(n) for n in names or ()})
    return ", ".join(words) if words else "something else"


def _word(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    if name.startswith("__ANON") or name.isupper():
        # Lark names keywords and punctuation after their text, e.g. RETURN or MORETHAN.
        pattern = _parser().get_terminal(name).pattern
        value = getattr(pattern, "value", name)
        return f"'{value}'"
    return name.lower()


_INT_DIGITS = len(str(MAX_INT))


def _int(digits: str, loc: SourceLoc) -> int:
    """The value of an integer literal, at most MAX_INT (length checked before converting)."""
    significant = digits.lstrip("0") or "0"
    value = int(significant) if len(significant) <= _INT_DIGITS else None
    if value is None or value > MAX_INT:
        raise SpecError(f"integer literal larger than {MAX_INT:,} (MAX_INT)", loc,
                        expected=f"an integer of at most {MAX_INT:,}")
    return value


def _float(text: str, loc: SourceLoc) -> float:
    """The value of a float literal; one that overflows to infinity is an error."""
    value = float(text)  # linear in the length, unlike int()
    if not math.isfinite(value):
        raise SpecError("number too large", loc,
                        expected=f"a finite number, at most {sys.float_info.max:.6g}")
    return value


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


_QUOTES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}  # the inverse of _ESCAPES


def quote_string(value: str) -> str:
    """`value` as an .arch string literal that `_unquote` reads back; ValueError for a
    character the language cannot write (it escapes only \\n, \\t, \\" and \\\\)."""
    bad = [ch for ch in value if ch not in _QUOTES and not ch.isprintable()]
    if bad:
        raise ValueError(f"cannot print the string {value!r} as .arch: it holds {bad[0]!r}, "
                         "and .arch strings escape only \\n, \\t, \\\" and \\\\")
    return '"' + "".join(_QUOTES.get(ch, ch) for ch in value) + '"'


def arch_literal(value: object) -> str:
    """A value (bool, int, finite float, str, or a list/tuple of them) as .arch text that
    parses back to it; ValueError or TypeError for anything the language cannot write."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot print {value!r} as .arch: the language has no such number")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(arch_literal(v) for v in value) + "]"
    raise TypeError(f"cannot print {value!r} as .arch")


def _unquote(token: str) -> str:
    """The value of a string literal; only \\n, \\t, \\" and \\\\ are escapes."""
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


class _ToAst(Transformer_NonRecursive):
    """Lark tree → `nasir.parse.ast`, attaching a `SourceLoc` to every node."""

    def __init__(self, file: str, lines: list[str]):
        super().__init__(visit_tokens=False)
        self.file = file
        self.lines = lines

    # -- locations
    def _loc(self, meta_or_token) -> SourceLoc:
        line = getattr(meta_or_token, "line", None) or 1
        col = getattr(meta_or_token, "column", None) or 1
        end_line = getattr(meta_or_token, "end_line", line)
        end_col = getattr(meta_or_token, "end_column", col + 1)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        length = (end_col - col) if end_line == line and end_col else len(text) - col + 1
        return SourceLoc(self.file, line, col, text, max(1, length))

    # -- top level
    @v_args(meta=True)
    def start(self, meta, items):
        module = ast.Module(self.file)
        for item in items:
            if isinstance(item, ast.Import):
                module.imports.append(item)
            elif isinstance(item, ast.Const):
                module.consts.append(item)
            elif isinstance(item, ast.Definition):
                module.definitions.append(item)
            elif isinstance(item, ast.Alias):
                module.aliases.append(item)
        return module

    @v_args(meta=True)
    def import_stmt(self, meta, children):
        return ast.Import(_unquote(children[0]), self._loc(meta))

    @v_args(meta=True)
    def const_stmt(self, meta, children):
        return ast.Const(str(children[0]), children[1], self._loc(meta))

    @v_args(meta=True)
    def alias(self, meta, children):
        kind, name, target, args = children
        if kind != "network":
            raise SpecError(f"only networks can be defined as `{kind} {name} = ...`",
                            self._loc(name), expected=f"{kind} {name}(params) {{ ... }}")
        return ast.Alias(str(name), str(target), args, self._loc(name))

    def defkind(self, children):
        return str(children[0])

    @v_args(meta=True)
    def definition(self, meta, children):
        kind, name, params, body = children
        return ast.Definition(kind, str(name), params or [], list(body), self._loc(name),
                              body.doc)

    def param_list(self, children):
        return [c for c in children if c is not None]

    @v_args(meta=True)
    def param(self, meta, children):
        name, type_, default = children
        return ast.Param(str(name), str(type_) if type_ is not None else None, default,
                         self._loc(name))

    def body(self, children):
        """The statements of a body. A string statement is documentation, not code: the
        first one of a definition's body is its docstring, any other is dropped."""
        items = [c for c in children if c is not None and not isinstance(c, Token)]
        doc = items[0] if items and isinstance(items[0], str) else ""
        return ast.Body((c for c in items if not isinstance(c, str)), doc)

    # -- statements
    @v_args(meta=True)
    def assign(self, meta, children):
        *targets, value = children
        return ast.Assign(self._loc(meta), [str(t) for t in targets], value)

    @v_args(meta=True)
    def return_stmt(self, meta, children):
        return ast.Return(self._loc(meta), children[0])

    @v_args(meta=True)
    def for_stmt(self, meta, children):
        *targets, iterable, body = children
        return ast.For(self._loc(meta), [str(t) for t in targets], iterable, body)

    @v_args(meta=True)
    def if_stmt(self, meta, children):
        test, body, *rest = children
        branches = [(test, body)]
        orelse = None
        for clause in rest:
            if clause is None:
                continue
            kind, payload = clause
            if kind == "elif":
                branches.append(payload)
            else:
                orelse = payload
        return ast.If(self._loc(meta), branches, orelse)

    def elif_clause(self, children):
        return ("elif", (children[0], children[1]))

    def else_clause(self, children):
        return ("else", children[0])

    @v_args(meta=True)
    def scope_stmt(self, meta, children):
        return ast.Scope(self._loc(meta), children[0], children[1])

    @v_args(meta=True)
    def input_stmt(self, meta, children):
        name, shape = children
        if isinstance(shape, Token):
            shape = tuple(_int(part, self._loc(shape)) for part in str(shape).split("x"))
        return ast.Input(self._loc(meta), str(name), shape)

    def expr_stmt(self, children):
        return _unquote(children[0])

    @v_args(meta=True)
    def default_stmt(self, meta, children):
        name, args = children
        return ast.Default(self._loc(meta), str(name), args or [])

    @v_args(meta=True)
    def label(self, meta, children):
        child = children[0]
        if isinstance(child, Token):
            value = _unquote(child) if child.type == "STRING" else str(child)
            return ast.Literal(self._loc(meta), value)
        return child

    # -- expressions
    @v_args(meta=True)
    def cond(self, meta, children):
        return ast.Cond(self._loc(meta), *children)

    @v_args(meta=True)
    def pipe(self, meta, children):
        source, stage = children
        if isinstance(source, ast.Pipe):
            source.stages.append(stage)
            source.loc = self._loc(meta)
            return source
        return ast.Pipe(self._loc(meta), source, [stage])

    @v_args(meta=True)
    def stage(self, meta, children):
        name, args, repeat, label = children
        return ast.Call(self._loc(name), str(name), args or [], label, repeat)

    def call_args(self, children):
        return children[0] or []

    def repeat(self, children):
        return children[0]

    @v_args(meta=True)
    def call(self, meta, children):
        name, args, label = children
        return ast.Call(self._loc(name), str(name), args or [], label)

    def arg_list(self, children):
        return [c if isinstance(c, ast.Arg) else ast.Arg(c) for c in children if c is not None]

    @v_args(meta=True)
    def kwarg(self, meta, children):
        return ast.Arg(children[1], name=str(children[0]), loc=self._loc(meta))

    def splat(self, children):
        return ast.Arg(children[0], splat=True)

    @v_args(meta=True)
    def or_op(self, meta, children):
        return ast.BoolOp(self._loc(meta), "or", *children)

    @v_args(meta=True)
    def and_op(self, meta, children):
        return ast.BoolOp(self._loc(meta), "and", *children)

    @v_args(meta=True)
    def not_op(self, meta, children):
        return ast.Not(self._loc(meta), children[0])

    @v_args(meta=True)
    def compare(self, meta, children):
        left, op, right = children
        return ast.Compare(self._loc(meta), op, left, right)

    def cmp_op(self, children):
        return str(children[0])

    add_op = mul_op = cmp_op

    @v_args(meta=True)
    def binop(self, meta, children):
        left, op, right = children
        return ast.BinOp(self._loc(meta), op, left, right)

    @v_args(meta=True)
    def neg(self, meta, children):
        return ast.Neg(self._loc(meta), children[0])

    @v_args(meta=True)
    def pow(self, meta, children):
        return ast.BinOp(self._loc(meta), "**", children[0], children[1])

    @v_args(meta=True)
    def index(self, meta, children):
        target, sub = children
        if isinstance(sub, tuple):
            return ast.Slice(self._loc(meta), target, sub[0], sub[1])
        return ast.Index(self._loc(meta), target, sub)

    def item(self, children):
        return children[0]

    def slice(self, children):
        return (children[0], children[1])

    @v_args(meta=True)
    def attr(self, meta, children):
        return ast.Attr(self._loc(meta), children[0], str(children[1]))

    @v_args(meta=True)
    def int(self, meta, children):
        loc = self._loc(meta)
        return ast.Literal(loc, _int(str(children[0]), loc))

    @v_args(meta=True)
    def float(self, meta, children):
        loc = self._loc(meta)
        return ast.Literal(loc, _float(str(children[0]), loc))

    def paren(self, children):
        return children[0]

    @v_args(meta=True)
    def string(self, meta, children):
        return ast.Literal(self._loc(meta), _unquote(children[0]))

    @v_args(meta=True)
    def true(self, meta, children):
        return ast.Literal(self._loc(meta), True)

    @v_args(meta=True)
    def false(self, meta, children):
        return ast.Literal(self._loc(meta), False)

    @v_args(meta=True)
    def name(self, meta, children):
        return ast.Name(self._loc(meta), str(children[0]))

    @v_args(meta=True)
    def list(self, meta, children):
        return ast.ListExpr(self._loc(meta), [c for c in children if c is not None])
