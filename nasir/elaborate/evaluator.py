"""Elaboration: run a network definition of a `Program` and record the ops it applies as IR.

Templates (`block`, `cell`, `network`) are instantiated with their arguments; each call
opens a scope named after its label or template, so IR node ids read like the spec's
structure. Shapes are inferred as nodes are created, which lets a spec read `x.c` and lets
errors point at the exact call that went wrong.
"""

from __future__ import annotations

import math
import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from nasir import limits
from nasir.elaborate.builtins import BUILTINS, BuiltinError, short_repr, type_name
from nasir.elaborate.values import (
    ListValue,
    StageValue,
    TensorValue,
    list_value,
    measure,
    size_of,
)
from nasir.errors import Note, SourceLoc, SpecError, did_you_mean
from nasir.gcpause import gc_paused
from nasir.ir.graph import IR, Node, Shape
from nasir.ops import ShapeError, get_op, op_names
from nasir.parse import ast
from nasir.parse.loader import Program

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Numeric labels: `as 0`, like torch's Sequential indices; `0_1` is the name a repeated `0`
# gets in its scope, accepted back so that printed specs re-parse.
_NUMERIC = re.compile(r"^[0-9]+(_[0-9]+)*$")
_TYPES = {"int", "float", "bool", "str", "list", "any"}
_CONSTRUCTS = {"split", "chunk"}  # calls the elaborator handles itself; reserved names


class _Return(Exception):
    """`return` inside a body: control flow that never leaves the elaborator."""

    def __init__(self, value: Any, loc: SourceLoc):
        self.value = value
        self.loc = loc


@dataclass
class _Frame:
    """The variables of one template call; `for`, `if` and `scope` bodies share it."""

    vars: dict[str, Any] = field(default_factory=dict)


def build_ir(program: Program, network: str, overrides: dict[str, Any] | None = None,
             input_shape: Shape | None = None) -> IR:
    """Elaborate `network` with parameter `overrides` (and an optional input shape)."""
    with gc_paused():
        return _Elaborator(program).network(network, overrides or {}, input_shape)


class _Elaborator:
    def __init__(self, program: Program):
        self.program = program
        self.globals: dict[str, Any] = {}
        self.scope: list[str] = []
        self.used: dict[tuple[str, ...], set[str]] = {}
        self.next_suffix: dict[tuple[tuple[str, ...], str], int] = {}
        self.stack: list[tuple[str, SourceLoc]] = []
        self.steps = 0
        # `default op(name=value)` in force: op -> attribute -> (value, where it was set).
        self.defaults: dict[str, dict[str, tuple[Any, SourceLoc]]] = {}
        self.ir: IR | None = None
        self.input_shape: Shape | None = None

    # ---- entry -----------------------------------------------------------------------
    def network(self, name: str, overrides: dict[str, Any], input_shape: Shape | None) -> IR:
        self._check_definition_names()
        for const in self.program.consts:
            self.globals[const.name] = self.eval(const.value, _Frame())
        definition, bound = self._resolve_network(name)
        bound = {**bound, **overrides}
        self.input_shape = input_shape
        self.ir = IR(name, source=self.program.root)
        frame = _Frame()
        params = self._bind_hyper(definition, bound, frame, definition.loc)
        self.ir.params = params
        try:
            self.exec_body(definition.body, frame)
        except _Return as ret:
            returned = ret
        else:
            raise SpecError(f"network '{name}' has no `return`", definition.loc,
                            expected="`return <tensor>` at the end of the network")
        if not self.ir.inputs:
            raise SpecError(f"network '{name}' declares no input", definition.loc,
                            expected="a statement such as `input x: 3x224x224`")
        if not isinstance(returned.value, TensorValue):
            raise SpecError(f"network '{name}' must return a tensor, got "
                            f"{type_name(returned.value)}", returned.loc,
                            expected="a tensor, e.g. `return x >> conv(8, 3)`")
        self.ir.output = returned.value.node
        return self.ir

    def _check_definition_names(self) -> None:
        """Constructs (`split`, `chunk`) are reserved. A definition named like a primitive op or
        a builtin function shadows it instead, so a new op never breaks an existing spec."""
        named = [*self.program.definitions.values(), *self.program.aliases.values(),
                 *self.program.consts]
        for d in named:
            if d.name in _CONSTRUCTS:
                raise SpecError(f"'{d.name}' is the name of a construct", d.loc,
                                expected="another name for this definition (reserved: "
                                         f"{', '.join(sorted(_CONSTRUCTS))})")

    def _resolve_network(self, name: str) -> tuple[ast.Definition, dict[str, Any]]:
        program = self.program
        if name in program.aliases:
            alias = program.aliases[name]
            target = program.definitions.get(alias.target)
            if target is None or target.kind != "network":
                raise SpecError(f"'{alias.target}' is not a network", alias.loc)
            bound = {}
            for arg in alias.args:
                if arg.name is None or arg.splat:
                    raise SpecError("a network alias binds parameters by name", arg.value.loc,
                                    expected="name=value")
                bound[arg.name] = (self.eval(arg.value, _Frame()), arg.loc or arg.value.loc)
            return target, bound
        definition = program.definitions.get(name)
        if definition is None or definition.kind != "network":
            known = program.networks()
            raise SpecError(f"no network named '{name}' in {program.root}"
                            f"{did_you_mean(name, known)}",
                            expected=f"one of: {', '.join(known) or '(none defined)'}")
        return definition, {}

    # ---- statements ------------------------------------------------------------------
    def exec_body(self, body: list[ast.Stmt], frame: _Frame) -> None:
        for stmt in body:
            self.exec(stmt, frame)

    def _step(self, loc: SourceLoc, work: int = 1) -> None:
        """Count `work` steps (a statement, a loop iteration, the items a list operation
        touches) against MAX_STEPS, which bounds the time a spec can take."""
        self.steps += work
        if self.steps > limits.MAX_STEPS:
            raise SpecError(f"the spec ran more than {limits.MAX_STEPS:,} steps (MAX_STEPS: "
                            "statements, loop iterations and list items processed)", loc,
                            expected="loops of a reasonable length")

    def exec(self, stmt: ast.Stmt, frame: _Frame) -> None:
        self._step(stmt.loc)
        if isinstance(stmt, ast.Assign):
            self._assign(stmt.targets, self.eval(stmt.value, frame), frame, stmt.loc)
        elif isinstance(stmt, ast.Return):
            raise _Return(self.eval(stmt.value, frame), stmt.loc)
        elif isinstance(stmt, ast.For):
            self._for(stmt, frame)
        elif isinstance(stmt, ast.If):
            self._if(stmt, frame)
        elif isinstance(stmt, ast.Scope):
            label = self._label(stmt.label, frame)
            with self._scope(label, None):
                self.exec_body(stmt.body, frame)
        elif isinstance(stmt, ast.Input):
            self._input(stmt, frame)
        elif isinstance(stmt, ast.Default):
            self._default(stmt, frame)

    def _assign(self, targets: list[str], value: Any, frame: _Frame, loc: SourceLoc) -> None:
        if len(targets) == 1:
            frame.vars[targets[0]] = value
            return
        if not isinstance(value, list) or len(value) != len(targets):
            got = f"a list of {len(value)}" if isinstance(value, list) else type_name(value)
            raise SpecError(f"cannot unpack {got} into {len(targets)} names", loc,
                            expected=f"a list of exactly {len(targets)} items")
        for target, item in zip(targets, value, strict=True):
            frame.vars[target] = item

    def _for(self, stmt: ast.For, frame: _Frame) -> None:
        items = self.eval(stmt.iterable, frame)
        if not isinstance(items, list):
            raise SpecError(f"`for` needs a list to iterate over, got {type_name(items)}",
                            stmt.iterable.loc, expected="a list, e.g. range(n) or [[...], ...]")
        for item in items:
            self._step(stmt.iterable.loc)
            self._assign(stmt.targets, item, frame, stmt.iterable.loc)
            self.exec_body(stmt.body, frame)

    def _if(self, stmt: ast.If, frame: _Frame) -> None:
        for test, body in stmt.branches:
            if self._truth(test, frame):
                self.exec_body(body, frame)
                return
        if stmt.orelse is not None:
            self.exec_body(stmt.orelse, frame)

    def _truth(self, test: ast.Expr, frame: _Frame) -> bool:
        value = self.eval(test, frame)
        if not isinstance(value, bool):
            raise SpecError(f"a condition must be true or false, got {type_name(value)}",
                            test.loc, expected="a comparison such as `stride == 1`")
        return value

    def _input(self, stmt: ast.Input, frame: _Frame) -> None:
        if self.stack:
            raise SpecError("`input` may only appear in a network", stmt.loc,
                            expected="block inputs declared as untyped parameters")
        shape = stmt.shape
        if isinstance(shape, ast.Expr):
            shape = self._shape_value(shape, frame)
        if self.input_shape is not None:
            if self.ir and self.ir.inputs:
                raise SpecError("--input given, but the network has several inputs", stmt.loc)
            shape = tuple(self.input_shape)
        node = self._add_node("input", {"shape": tuple(shape)}, [], stmt.name, stmt.loc)
        frame.vars[stmt.name] = node

    def _shape_value(self, expr: ast.Expr, frame: _Frame) -> tuple[int, ...]:
        value = self.eval(expr, frame)
        dims = value if isinstance(value, list) else [value]
        if not 1 <= len(dims) <= 3 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
            raise SpecError(f"an input shape must be 1 to 3 positive ints, got "
                            f"{short_repr(value)}",
                            expr.loc, expected="e.g. 3x224x224 or [3, size, size]")
        return tuple(dims)

    # ---- expressions -----------------------------------------------------------------
    def eval(self, expr: ast.Expr, frame: _Frame) -> Any:
        method = getattr(self, "_eval_" + type(expr).__name__)
        return method(expr, frame)

    def _eval_Literal(self, e: ast.Literal, frame: _Frame) -> Any:
        return _check_value(e.value, e.loc, "the literal")

    def _eval_Name(self, e: ast.Name, frame: _Frame) -> Any:
        if e.id in frame.vars:
            return frame.vars[e.id]
        if e.id in self.globals:
            return self.globals[e.id]
        if e.id in self.program.definitions or get_op(e.id) or e.id in BUILTINS:
            raise SpecError(f"'{e.id}' is a function, not a value", e.loc,
                            expected=f"a call such as {e.id}(...) or a pipe `x >> {e.id}`")
        visible = [*frame.vars, *self.globals]
        raise SpecError(f"undefined name '{e.id}'{did_you_mean(e.id, visible)}", e.loc,
                        expected="a parameter, a variable assigned earlier, or a `let` constant")

    def _eval_ListExpr(self, e: ast.ListExpr, frame: _Frame) -> list:
        return self._list([self.eval(item, frame) for item in e.items], e.loc)

    def _list(self, items: list, loc: SourceLoc) -> ListValue:
        """A new list value, checked against MAX_LIST_ITEMS and MAX_NESTING."""
        measured = measure(items)
        _check_list_measure(measured[0], measured[1], loc)
        self._step(loc, len(items))
        return list_value(items, measured)

    def _eval_Cond(self, e: ast.Cond, frame: _Frame) -> Any:
        return self.eval(e.then if self._truth(e.test, frame) else e.orelse, frame)

    def _eval_Not(self, e: ast.Not, frame: _Frame) -> bool:
        return not self._truth(e.operand, frame)

    def _eval_BoolOp(self, e: ast.BoolOp, frame: _Frame) -> bool:
        # A left-deep chain `a and b and c ...` is walked iteratively: it may be long.
        chain = _left_spine(e, ast.BoolOp)
        value = self._truth(chain[-1].left, frame)
        for node in reversed(chain):
            if value == (node.op == "and"):
                value = self._truth(node.right, frame)
        return value

    def _eval_Neg(self, e: ast.Neg, frame: _Frame) -> Any:
        value = self.eval(e.operand, frame)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"cannot negate {type_name(value)}", e.loc, expected="a number")
        return _check_value(-value, e.loc)

    def _eval_Compare(self, e: ast.Compare, frame: _Frame) -> bool:
        left, right = self.eval(e.left, frame), self.eval(e.right, frame)
        if isinstance(left, TensorValue) or isinstance(right, TensorValue):
            raise SpecError("tensors cannot be compared; compare their shapes (x.c, x.h)",
                            e.loc, expected="numbers or strings")
        if isinstance(left, list | str) and isinstance(right, list | str):
            self._step(e.loc, 1 + min(_work(left), _work(right)))
        try:
            return _COMPARE[e.op](left, right)
        except TypeError:
            raise SpecError(f"cannot compare {type_name(left)} {e.op} {type_name(right)}",
                            e.loc, expected="two numbers, or two strings") from None

    def _eval_BinOp(self, e: ast.BinOp, frame: _Frame) -> Any:
        # Left-deep chains (`1 + 1 + ... + 1`, `a + b - c`) are walked iteratively: the
        # parser counts a chain of one precedence level as a single level of nesting.
        chain = _left_spine(e, ast.BinOp)
        value = self.eval(chain[-1].left, frame)
        for node in reversed(chain):
            value = self._binop(node, value, self.eval(node.right, frame))
        return value

    def _binop(self, e: ast.BinOp, left: Any, right: Any) -> Any:
        if isinstance(left, TensorValue) and isinstance(right, TensorValue) and e.op in "+*":
            op = "add" if e.op == "+" else "mul"
            return self._op_call(op, [left, right], {}, None, e.loc)
        if e.op == "+" and isinstance(left, list) and isinstance(right, list):
            size, depth = size_of(left) + size_of(right), max(_depth(left), _depth(right))
            _check_list_measure(size, depth, e.loc)
            self._step(e.loc, len(left) + len(right))
            tensors = _has_tensor(left) or _has_tensor(right)
            return list_value(left + right, (size, depth, tensors))
        if e.op == "+" and isinstance(left, str) and isinstance(right, str):
            _check_str_len(len(left) + len(right), e.loc)
            self._step(e.loc, 1 + (len(left) + len(right)) // 64)
        return _arith(e.op, left, right, e.loc)

    def _eval_Index(self, e: ast.Index, frame: _Frame) -> Any:
        target, index = self.eval(e.target, frame), self.eval(e.index, frame)
        if isinstance(target, TensorValue):
            raise SpecError("tensors are sliced by channel ranges", e.loc,
                            expected=f"a slice such as x[0:{target.shape[0]}]")
        if not isinstance(target, list | str):
            raise SpecError(f"cannot index {type_name(target)}", e.loc, expected="a list")
        if isinstance(index, bool) or not isinstance(index, int):
            raise SpecError(f"a list index must be an int, got {type_name(index)}", e.index.loc)
        if not -len(target) <= index < len(target):
            raise SpecError(f"index {index} is out of range for a list of {len(target)}",
                            e.index.loc, expected=f"an index from 0 to {len(target) - 1}")
        return target[index]

    def _eval_Slice(self, e: ast.Slice, frame: _Frame) -> Any:
        target = self.eval(e.target, frame)
        start = self._opt_int(e.start, frame)
        stop = self._opt_int(e.stop, frame)
        if isinstance(target, str):
            return target[start:stop]
        if isinstance(target, list):
            return self._list(target[start:stop], e.loc)
        if not isinstance(target, TensorValue):
            raise SpecError(f"cannot slice {type_name(target)}", e.loc)
        channels = target.shape[0]
        start = 0 if start is None else (start + channels if start < 0 else start)
        stop = channels if stop is None else (stop + channels if stop < 0 else stop)
        if start == 0 and stop == channels:
            return target
        return self._op_call("slice", [target], {"start": (start, e.loc), "stop": (stop, e.loc)},
                             None, e.loc)

    def _opt_int(self, expr: ast.Expr | None, frame: _Frame) -> int | None:
        if expr is None:
            return None
        value = self.eval(expr, frame)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"slice bounds must be ints, got {type_name(value)}", expr.loc)
        return value

    def _eval_Attr(self, e: ast.Attr, frame: _Frame) -> Any:
        target = self.eval(e.target, frame)
        if not isinstance(target, TensorValue):
            raise SpecError(f"{type_name(target)} has no attribute '{e.name}'", e.loc)
        shape = target.shape
        fields = {"c": shape[0], "shape": list_value(list(shape))}
        if len(shape) == 3:
            fields.update(h=shape[1], w=shape[2])
        if e.name not in fields:
            raise SpecError(f"tensor has no attribute '{e.name}'", e.loc,
                            expected=f"one of {', '.join(fields)}")
        return fields[e.name]

    def _eval_Pipe(self, e: ast.Pipe, frame: _Frame) -> Any:
        value = self.eval(e.source, frame)
        for stage in e.stages:
            if not isinstance(value, TensorValue):
                raise SpecError(f"only tensors can be piped with >>, got {type_name(value)}",
                                stage.loc, expected="a tensor on the left of >>")
            value = self._eval_Call(stage, frame, piped=value)
        return value

    def _eval_Call(self, e: ast.Call, frame: _Frame,
                   piped: TensorValue | None = None) -> Any:
        times = 1
        if e.repeat is not None:
            times = self.eval(e.repeat, frame)
            if isinstance(times, bool) or not isinstance(times, int) or times < 0:
                raise SpecError(f"a repeat count must be a non-negative int, got "
                                f"{times!r} ({type_name(times)})", e.repeat.loc,
                                expected="an integer such as `* 3`")
        value: Any = piped
        for _ in range(times):
            self._step(e.loc)
            value = self._call_once(e, frame, value)
        return value

    def _call_once(self, e: ast.Call, frame: _Frame, piped: TensorValue | None) -> Any:
        args, kwargs = self._args(e.args, frame)
        label = self._label(e.label, frame) if e.label is not None else None
        stage = frame.vars.get(e.func)
        if isinstance(stage, StageValue) and not e.args:  # `x >> member` for a stage variable
            return self._apply_stage(stage, [piped] if piped else [], label, e.loc)
        if e.func in _CONSTRUCTS:
            construct = self._split if e.func == "split" else self._chunk
            return construct([piped, *args] if piped else args, kwargs, label, e.loc)
        takes_tensors = e.func in self.program.definitions or get_op(e.func) is not None
        if piped is None and takes_tensors and not any(_has_tensor(a) for a in args):
            return StageValue(e.func, tuple(args), kwargs, e.loc)
        if piped is not None:
            args.insert(0, piped)
        return self._dispatch(e.func, args, kwargs, label, e.loc)

    def _apply_stage(self, stage: StageValue, tensors: list[TensorValue], label: str | None,
                     loc: SourceLoc) -> Any:
        return self._dispatch(stage.func, [*tensors, *stage.args], dict(stage.kwargs), label,
                              stage.loc or loc)

    def _dispatch(self, func: str, args: list, kwargs: dict, label: str | None,
                  loc: SourceLoc) -> Any:
        # The program's own definitions come first: they shadow ops and builtins.
        if func in self.program.definitions:
            return self._template_call(self.program.definitions[func], args, kwargs, label,
                                       loc)
        if func in self.program.aliases:
            raise SpecError(f"'{func}' is a network and cannot be called", loc,
                            expected="a block or cell")
        if get_op(func) is not None:
            return self._op_call(func, args, kwargs, label, loc)
        if func in BUILTINS:
            return self._builtin_call(func, args, kwargs, loc)
        known = [*self.program.definitions, *op_names(), *BUILTINS]
        raise SpecError(f"unknown op or block '{func}'{did_you_mean(func, known)}", loc,
                        expected="a primitive op (see `nasir ops`), a block defined or "
                                 "imported in this spec, or a builtin function")

    def _split(self, args: list, kwargs: dict, label: str | None,
               loc: SourceLoc) -> TensorValue:
        """`x >> split(member, S, mode="mean")`: S copies of `member` on the same input, or
        `split([v0, v1], member)` on S views, each in scope net0..net{S-1}, then `ensemble`."""
        unknown = sorted(set(kwargs) - {"mode"})
        if unknown:
            raise SpecError(f"split has no parameter '{unknown[0]}'", kwargs[unknown[0]][1],
                            expected="split(inputs, member, count, mode=\"mean\")")
        if len(args) not in (2, 3) or not isinstance(args[1], StageValue):
            raise SpecError("split needs its input(s) and a member stage", loc,
                            expected="x >> split(member(params), count, mode=\"mean\") or "
                                     "split([view0, view1], member(params))")
        inputs, member = args[0], args[1]
        if isinstance(inputs, TensorValue):
            count = args[2] if len(args) == 3 else 1
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise SpecError(f"split count must be a positive int, got {count!r}", loc)
            inputs = [inputs] * count
        elif not (isinstance(inputs, list) and inputs and all(
                isinstance(v, TensorValue) for v in inputs)) or len(args) == 3:
            raise SpecError("split takes one tensor and a count, or a list of view tensors",
                            loc, expected="x >> split(member, 4) or split([v0, v1], member)")
        from nasir.passes.split import member_scope  # a pass module: off the start-up path

        with self._scope(label, None) if label else nullcontext():
            # The layout of the `split` pass (nasir.passes.split): members net0.., `ensemble`.
            outs = [self._apply_stage(member, [view], member_scope(i), loc)
                    for i, view in enumerate(inputs)]
            mode = {"mode": kwargs["mode"]} if "mode" in kwargs else {}
            return self._op_call("ensemble", outs, mode, None, loc)

    def _chunk(self, args: list, kwargs: dict, label: str | None,
               loc: SourceLoc) -> ListValue:
        """`a, b = chunk(x, 2)` or `x >> chunk(2)`: n equal channel groups, as `slice` nodes
        named chunk0..chunk{n-1} (or LABEL0.. with `as LABEL`), like torch.chunk on dim 1."""
        if kwargs:
            name = next(iter(kwargs))
            raise SpecError(f"chunk has no parameter '{name}'", kwargs[name][1],
                            expected="chunk(x, n) or x >> chunk(n)")
        if len(args) != 2 or not isinstance(args[0], TensorValue):
            raise SpecError("chunk needs a tensor and a number of groups", loc,
                            expected="chunk(x, n) or x >> chunk(n)")
        x, n = args
        channels = x.shape[0]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError(f"chunk count must be a positive int, got {short_repr(n)}", loc,
                            expected="an integer that divides the channels")
        if channels % n:
            raise SpecError(f"chunk({n}) does not divide the {channels} channels of its input "
                            "into equal groups", loc,
                            expected=f"a count that divides {channels}")
        width = channels // n
        base = label or "chunk"
        outs = [self._add_node("slice", {"start": i * width, "stop": (i + 1) * width}, [x],
                               f"{base}{i}", loc, called="chunk") if n > 1 else x
                for i in range(n)]
        return self._list(outs, loc)

    def _default(self, stmt: ast.Default, frame: _Frame) -> None:
        """`default bn(eps=1e-3)`: attribute values for later calls of a primitive op, until
        the enclosing block (or network) call ends; explicit arguments win."""
        name = stmt.op
        op = get_op(name)
        if op is None or name in self.program.definitions or name in self.program.aliases:
            what = ("a definition of this program, not a primitive op"
                    if op is not None else f"not a primitive op{did_you_mean(name, op_names())}")
            raise SpecError(f"`default` needs a primitive op, but '{name}' is {what}",
                            stmt.loc, expected="an op listed by `nasir ops`, e.g. "
                                               "`default bn(eps=1e-3)`")
        fields = list(op.Attrs.model_fields)
        new = dict(self.defaults.get(name, {}))
        for arg in stmt.args:
            where = arg.loc or arg.value.loc
            if arg.name is None or arg.splat:
                raise SpecError(f"`default {name}` takes only named values", where,
                                expected="name=value, e.g. `default bn(eps=1e-3)`")
            if arg.name not in fields:
                raise SpecError(f"{name} has no parameter '{arg.name}'"
                                f"{did_you_mean(arg.name, fields)}", where,
                                expected=f"parameters of {name}: {', '.join(fields) or '(none)'}")
            new[arg.name] = (self.eval(arg.value, frame), where)
        self.defaults = {**self.defaults, name: new}

    def _args(self, args: list[ast.Arg], frame: _Frame) -> tuple[list, dict]:
        positional: list[Any] = []
        named: dict[str, Any] = {}
        for arg in args:
            value = self.eval(arg.value, frame)
            if arg.splat:
                if not isinstance(value, list):
                    raise SpecError(f"* expands a list, got {type_name(value)}", arg.value.loc)
                self._step(arg.value.loc, len(value))
                if len(positional) + len(value) > limits.MAX_LIST_ITEMS:
                    raise SpecError(f"{len(positional) + len(value):,} arguments exceed the "
                                    f"limit of {limits.MAX_LIST_ITEMS:,} list items "
                                    "(MAX_LIST_ITEMS)", arg.value.loc, expected="fewer items")
                positional.extend(value)
            elif arg.name is not None:
                where = arg.loc or arg.value.loc
                if arg.name in named:
                    raise SpecError(f"argument '{arg.name}' given twice", where)
                named[arg.name] = (value, where)
            else:
                if named:
                    raise SpecError("positional argument after a named one", arg.value.loc,
                                    expected="positional arguments first")
                positional.append(value)
        return positional, named

    def _label(self, expr: ast.Expr | None, frame: _Frame) -> str:
        """A scope or node name: an identifier, or digits (`as 0`, `scope (i)`) so that ids
        can mirror torchvision's `features.0.1`."""
        value = self.eval(expr, frame)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            value = str(value)
        if not isinstance(value, str) or not (_IDENT.match(value) or _NUMERIC.match(value)):
            raise SpecError(f"a scope or node name must be an identifier or a number, got "
                            f"{short_repr(value)}", expr.loc,
                            expected="letters, digits and _, not starting with a digit; or "
                                     "digits only, such as 0")
        return value

    # ---- builtins --------------------------------------------------------------------
    def _builtin_call(self, name: str, args: list, kwargs: dict, loc: SourceLoc) -> Any:
        if any(isinstance(a, TensorValue) for a in args):
            raise SpecError(f"{name}() works on numbers, not tensors", loc)
        work = sum(len(a) for a in args if isinstance(a, list))
        self._step(loc, 1 + work)
        try:
            result = BUILTINS[name](*args, **{k: v for k, (v, _) in kwargs.items()})
        except BuiltinError as exc:
            raise SpecError(str(exc), loc) from None
        except TypeError:
            raise SpecError(f"wrong arguments for {name}()", loc) from None
        except (ValueError, OverflowError, ZeroDivisionError) as exc:
            raise SpecError(f"{name}(): {short_repr(str(exc), 200)}", loc) from None
        if isinstance(result, list):
            return self._list(result, loc)
        return _check_value(result, loc, f"the result of {name}()")

    # ---- templates -------------------------------------------------------------------
    def _template_call(self, d: ast.Definition, args: list, kwargs: dict,
                       label: str | None, loc: SourceLoc) -> Any:
        if d.kind == "network":
            raise SpecError(f"'{d.name}' is a network and cannot be called", loc,
                            expected="a block or cell (networks are entry points)")
        if any(name == d.name for name, _ in self.stack):
            chain = " -> ".join([*(n for n, _ in self.stack), d.name])
            raise SpecError(f"recursive call: {chain}", loc,
                            expected="blocks that do not call themselves")
        if len(self.stack) >= limits.MAX_CALL_DEPTH:
            names = [n for n, _ in self.stack]
            chain = " -> ".join([*names[:3], "...", *names[-3:], d.name])
            # The message shows both ends of the chain; the trace its innermost calls.
            raise SpecError(f"block calls nest deeper than {limits.MAX_CALL_DEPTH} "
                            f"(MAX_CALL_DEPTH): {chain}", loc,
                            expected="a shallower chain of block calls",
                            trace=list(reversed(self.stack))[:5])
        frame = _Frame()
        tensors = [a for a in args if isinstance(a, TensorValue)]
        scalars = [a for a in args if not isinstance(a, TensorValue)]
        inputs = d.inputs
        if len(tensors) > len(inputs):
            raise SpecError(f"{d.kind} '{d.name}' takes {len(inputs)} tensor input(s), "
                            f"got {len(tensors)}", loc,
                            expected=f"inputs ({', '.join(p.name for p in inputs)})")
        for param, value in zip(inputs, tensors, strict=False):
            frame.vars[param.name] = value
        named = dict(kwargs)
        for param in inputs[len(tensors):]:
            if param.name in named:
                value, vloc = named.pop(param.name)
                if not isinstance(value, TensorValue):
                    raise SpecError(f"input '{param.name}' must be a tensor", vloc)
                frame.vars[param.name] = value
            else:
                raise SpecError(f"{d.kind} '{d.name}' is missing its tensor input "
                                f"'{param.name}'", loc)
        hyper = d.hyper
        if len(scalars) > len(hyper):
            raise SpecError(f"{d.kind} '{d.name}' takes {len(hyper)} parameter(s), got "
                            f"{len(scalars)} positional", loc,
                            expected=f"parameters ({', '.join(p.name for p in hyper)})")
        bound = {p.name: (v, loc) for p, v in zip(hyper, scalars, strict=False)}
        for name, value in named.items():
            if name in bound:
                raise SpecError(f"parameter '{name}' given twice", value[1])
            bound[name] = value
        self._bind_hyper(d, bound, frame, loc)
        self.stack.append((d.name, loc))
        outer_defaults = self.defaults  # `default` statements end with the call
        try:
            with self._scope(label or d.name, (d.kind, d.name)):
                self.exec_body(d.body, frame)
        except _Return as ret:
            return ret.value
        except SpecError as err:
            raise err.with_trace(list(reversed(self.stack))) from None
        finally:
            self.stack.pop()
            self.defaults = outer_defaults
        raise SpecError(f"{d.kind} '{d.name}' ended without `return`", d.loc,
                        expected="`return <tensor>` at the end of the block")

    def _bind_hyper(self, d: ast.Definition, bound: dict, frame: _Frame,
                    loc: SourceLoc) -> dict[str, Any]:
        """Bind parameters (checking names and types); defaults may use earlier ones."""
        known = {p.name for p in d.hyper}
        for name, value in bound.items():
            if name not in known:
                # Values without a location come from outside the spec (--set, keywords).
                inside = isinstance(value, tuple)
                raise SpecError(f"{d.kind} '{d.name}' has no parameter '{name}'"
                                f"{did_you_mean(name, sorted(known))}"
                                f"{'' if inside else ' (given with --set or as a keyword)'}",
                                value[1] if inside else loc,
                                expected=f"one of: {', '.join(sorted(known)) or '(none)'}")
        if d.kind == "network" and d.inputs:
            raise SpecError(f"network '{d.name}' parameters need types", d.inputs[0].loc,
                            expected="`name: int = 3`; declare tensors with `input x: 3x32x32`")
        values: dict[str, Any] = {}
        for p in d.hyper:
            if p.name in bound:
                value = bound[p.name]
                value, vloc = value if isinstance(value, tuple) else (value, loc)
            elif p.default is not None:
                value, vloc = self.eval(p.default, frame), p.default.loc
            else:
                raise SpecError(f"{d.kind} '{d.name}' needs a value for '{p.name}'", loc,
                                expected=f"{p.name}=<{p.type or 'value'}>")
            frame.vars[p.name] = values[p.name] = _check_type(p, value, vloc)
        return values

    # ---- ops ---------------------------------------------------------------------------
    def _op_call(self, name: str, args: list, kwargs: dict, label: str | None,
                 loc: SourceLoc) -> TensorValue:
        op = get_op(name)
        tensors = [a for a in args if isinstance(a, TensorValue)]
        scalars = [a for a in args if not isinstance(a, TensorValue)]
        if op.arity == 0 or (op.arity is not None and len(tensors) != op.arity) or not tensors:
            want = "one or more" if op.arity is None else str(op.arity)
            raise SpecError(f"{name} takes {want} tensor input(s), got {len(tensors)}", loc,
                            expected=f"e.g. `x >> {name}(...)`" if op.arity == 1 else None)
        if len(scalars) > len(op.positional):
            raise SpecError(f"{name} takes at most {len(op.positional)} positional "
                            f"parameter(s), got {len(scalars)}", loc,
                            expected=f"{op.doc}" if op.doc else None)
        attrs = dict(zip(op.positional, scalars, strict=False))
        defaults = self.defaults.get(name)
        if defaults:  # `default op(...)` in force: explicit arguments win
            kwargs = {**{k: v for k, v in defaults.items() if k not in attrs}, **kwargs}
        for key, (value, vloc) in kwargs.items():
            if key in attrs:
                raise SpecError(f"{name} parameter '{key}' given twice", vloc)
            attrs[key] = value
        ins = [t.shape for t in tensors]
        try:
            stored, attrs = op.resolve(attrs, ins)
        except ShapeError as exc:
            raise self._shape_error(name, exc, tensors, loc) from None
        except ValidationError as exc:
            raise self._attr_error(name, exc, kwargs, loc) from None
        return self._add_node(stored, attrs, tensors, label or name, loc, called=name,
                              kwargs=kwargs)

    def _add_node(self, op_name: str, attrs: dict, tensors: list[TensorValue], base: str,
                  loc: SourceLoc, called: str | None = None,
                  kwargs: dict | None = None) -> TensorValue:
        op = get_op(op_name)
        try:
            model = op.Attrs(**attrs)
        except ValidationError as exc:
            raise self._attr_error(called or op_name, exc, kwargs or {}, loc) from None
        ins = [t.shape for t in tensors]
        try:
            shape = tuple(op.infer(model, ins))
        except ShapeError as exc:
            raise self._shape_error(called or op_name, exc, tensors, loc) from None
        if len(self.ir) >= limits.MAX_NODES:
            raise SpecError(f"the network grew past {limits.MAX_NODES:,} nodes (MAX_NODES)",
                            loc, expected="a smaller network")
        node_id = "/".join([*self.scope, self._unique(base)])
        self.ir.add(Node(node_id, op_name, model, tuple(t.node for t in tensors), loc, shape))
        return TensorValue(node_id, shape)

    def _attr_error(self, name: str, exc: ValidationError, kwargs: dict,
                    loc: SourceLoc) -> SpecError:
        op = get_op(name)
        err = exc.errors()[0]
        field_name = str(err["loc"][0]) if err["loc"] else ""
        where = kwargs.get(field_name, (None, loc))[1]
        fields = list(op.Attrs.model_fields) if op else []
        if err["type"] == "extra_forbidden":
            return SpecError(f"{name} has no parameter '{field_name}'"
                             f"{did_you_mean(field_name, fields)}", where,
                             expected=f"parameters of {name}: {', '.join(fields) or '(none)'}")
        if err["type"] == "missing":
            return SpecError(f"{name} needs parameter '{field_name}'", loc,
                             expected=op.doc if op else None)
        got = err.get("input")
        return SpecError(f"{name} parameter '{field_name}': {err['msg'].lower()} "
                         f"(got {short_repr(got)}, {type_name(got)})", where,
                         expected=op.doc if op else None)

    def _shape_error(self, name: str, exc: ShapeError, tensors: list[TensorValue],
                     loc: SourceLoc) -> SpecError:
        notes = []
        for i in exc.inputs:
            if i < len(tensors):
                producer = self.ir.node(tensors[i].node)
                shape = "x".join(map(str, tensors[i].shape))
                notes.append(Note(f"input {i} is {tensors[i].node} ({shape}), made here",
                                  producer.loc))
        # Most shape rules already name their op ("conv window ..."); avoid "conv: conv ...".
        message = exc.message if exc.message.startswith(name) else f"{name}: {exc.message}"
        doc = get_op(name).doc
        expected = f"inputs valid for {name} ({doc})" if doc else None
        return SpecError(message, loc, expected=expected, notes=notes)

    # ---- scopes ----------------------------------------------------------------------
    def _unique(self, base: str) -> str:
        scope = tuple(self.scope)
        used = self.used.setdefault(scope, set())
        # Names are never released, so the next free suffix for `base` is never below the
        # last one handed out; resuming there keeps `x >> relu * 10000` linear, not quadratic.
        k = self.next_suffix.get((scope, base), 0)
        name = f"{base}_{k}" if k else base
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        self.next_suffix[(scope, base)] = k + 1
        return name

    def _scope(self, label: str, kind: tuple[str, str] | None):
        return _ScopeGuard(self, label, kind)


def _has_tensor(value: Any) -> bool:
    if isinstance(value, TensorValue):
        return True
    if isinstance(value, ListValue):
        return value.tensors
    return isinstance(value, list) and measure(value)[2]


def _depth(value: list) -> int:
    return value.depth if isinstance(value, ListValue) else measure(value)[1]


def _work(value: list | str) -> int:
    """Steps charged for touching every item of a value (strings are cheap per character)."""
    return size_of(value) if isinstance(value, list) else len(value) // 64


def _left_spine(e: ast.Expr, kind: type) -> list:
    """The nodes of a left-deep chain of `kind`, outermost first."""
    chain = [e]
    while isinstance(chain[-1].left, kind):
        chain.append(chain[-1].left)
    return chain


def _check_list_measure(size: int, depth: int, loc: SourceLoc) -> None:
    if size > limits.MAX_LIST_ITEMS:
        raise SpecError(f"a list of {size:,} items (nested lists included) exceeds the limit "
                        f"of {limits.MAX_LIST_ITEMS:,} list items (MAX_LIST_ITEMS)", loc,
                        expected="smaller lists")
    if depth > limits.MAX_NESTING:
        raise SpecError(f"lists nest deeper than {limits.MAX_NESTING} (MAX_NESTING)", loc,
                        expected="lists of lists a few levels deep")


def _check_str_len(length: int, loc: SourceLoc) -> None:
    if length > limits.MAX_STR_CHARS:
        raise SpecError(f"a string of {length:,} characters exceeds the limit of "
                        f"{limits.MAX_STR_CHARS:,} characters (MAX_STR_CHARS)", loc,
                        expected="shorter strings")


def _check_value(value: Any, loc: SourceLoc, what: str = "the result") -> Any:
    """Every int has |v| <= MAX_INT, every float is finite, every string fits MAX_STR_CHARS."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -limits.MAX_INT <= value <= limits.MAX_INT:
            raise _int_limit(loc, what)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"{what} is not a finite number", loc,
                            expected="numbers of a reasonable size")
    elif isinstance(value, str):
        _check_str_len(len(value), loc)
    return value


def _int_limit(loc: SourceLoc, what: str = "the result") -> SpecError:
    return SpecError(f"{what} exceeds the limit of {limits.MAX_INT:,} for the magnitude of an "
                     "integer (MAX_INT)", loc, expected="integers of a reasonable size")


class _ScopeGuard:
    def __init__(self, elab: _Elaborator, label: str, kind: tuple[str, str] | None):
        self.elab, self.label, self.kind = elab, label, kind

    def __enter__(self) -> None:
        name = self.elab._unique(self.label)
        self.elab.scope.append(name)
        path = "/".join(self.elab.scope)
        self.elab.ir.scope_kinds[path] = self.kind or ("scope", self.label)

    def __exit__(self, *exc: object) -> None:
        self.elab.scope.pop()


_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _arith(op: str, left: Any, right: Any, loc: SourceLoc) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    if op == "+" and isinstance(left, list) and isinstance(right, list):
        return left + right
    if not (_is_number(left) and _is_number(right)):
        raise SpecError(f"cannot apply {op} to {type_name(left)} and {type_name(right)}", loc,
                        expected="two numbers (or + on two strings or two lists)")
    if op in ("/", "//", "%") and right == 0:
        raise SpecError("division by zero", loc, expected="a non-zero divisor")
    if op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
            and (abs(left).bit_length() - 1) * right > limits.MAX_INT.bit_length():
        raise _int_limit(loc, f"{left} ** {right}")  # refused before it is computed
    if op == "**" and isinstance(right, int) and abs(right) > 4096:
        raise SpecError(f"exponent {right} is too large", loc, expected="an exponent up to 4096")
    try:
        result = _ARITH[op](left, right)
    except (OverflowError, ZeroDivisionError) as exc:
        raise SpecError(f"arithmetic error: {exc}", loc) from None
    if isinstance(result, complex) or (isinstance(result, float) and not math.isfinite(result)):
        raise SpecError(f"{left} {op} {right} has no finite real value", loc)
    return _check_value(result, loc, f"{left} {op} {right}")


_ARITH = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
    "**": lambda a, b: a**b,
}


def _check_type(p: ast.Param, value: Any, loc: SourceLoc) -> Any:
    """Check a parameter value against its declared type (ints widen to float)."""
    declared = p.type or "any"
    if declared not in _TYPES:
        raise SpecError(f"unknown type '{declared}' for parameter '{p.name}'"
                        f"{did_you_mean(declared, sorted(_TYPES))}", p.loc,
                        expected=", ".join(sorted(_TYPES)))
    ok = {
        "any": not isinstance(value, TensorValue),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": _is_number(value),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, list),
    }[declared]
    if not ok:
        raise SpecError(f"parameter '{p.name}' expects {declared}, got {short_repr(value)} "
                        f"({type_name(value)})", loc, expected=f"a value of type {declared}")
    return float(value) if declared == "float" else value


def eval_constant(expr: ast.Expr) -> Any:
    """Evaluate a constant expression (a `--set` value); a bare word is a string."""
    if isinstance(expr, ast.Name):
        return expr.id
    return _Elaborator(Program("<constant>")).eval(expr, _Frame())
