"""The pass interface and the pipeline that runs passes (the model: sqlglot's optimizer rules,
torch.fx's PassManager).

A pass is a plain function `fn(ir: IR, **options) -> IR` that returns a new IR and never
mutates its input; `@register_pass("name")` makes it available by name, and a pass is
written as text `"name"` or `"name:key=value,key=value"` (as a future `--pass` flag will).
`transform(ir, passes)` copies the input once, runs the passes in order, each on the
previous one's output, and verifies the IR after each one. Every failure is a `SpecError`
naming the pass (and the node, for `Transformer` passes), never a traceback.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

from nasir.errors import Note, SpecError, did_you_mean, shown
from nasir.ir.graph import IR
from nasir.ir.rewrite import ACTIVE_PASS
from nasir.ir.verify import IRError

Pass = Callable[..., IR]
PassStep = str | Pass | tuple[str | Pass, dict[str, Any]]

_PASSES: dict[str, Pass] = {}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
# The modules of nasir.passes that register the built-in passes, imported when a pass is
# first asked for, so that start-up does not pay for them.
_BUILT_IN = ("adder", "condense", "fuse", "ghost", "split")


def _load_built_in() -> None:
    import importlib

    for name in _BUILT_IN:
        importlib.import_module(f"nasir.passes.{name}")


def register_pass(name: str) -> Callable[[Pass], Pass]:
    """Decorator: make `fn(ir, **options) -> IR` available to `transform` as `name`."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"pass name {name!r} is not an identifier")

    def register(fn: Pass) -> Pass:
        if _PASSES.get(name, fn) is not fn:
            raise ValueError(f"pass {name} registered twice")
        _PASSES[name] = fn
        return fn

    return register


def unregister_pass(name: str) -> None:
    """Remove a pass (for tests and notebooks that register their own)."""
    _PASSES.pop(name, None)


def pass_names() -> list[str]:
    _load_built_in()
    return sorted(_PASSES)


def get_pass(name: str) -> Pass:
    if name not in _PASSES:
        _load_built_in()
    if name not in _PASSES:
        raise SpecError(f"unknown pass '{shown(name)}'{did_you_mean(name, pass_names())}",
                        expected=f"one of: {', '.join(pass_names()) or '(none registered)'}")
    return _PASSES[name]


def parse_pass(text: str) -> tuple[str, dict[str, Any]]:
    """`"split:S=4,mode=fast"` -> `("split", {"S": 4, "mode": "fast"})`.

    Values are ints, floats, `true`/`false`, or else plain strings.
    """
    name, _, rest = text.partition(":")
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise SpecError(f"bad pass '{shown(text)}'", expected="name or name:key=value,...")
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not key.isidentifier() or key in options:
            raise SpecError(f"bad option '{shown(item)}' of pass {name}",
                            expected="key=value, each key once, e.g. split:S=4")
        options[key] = _option_value(value)
    return name, options


def _option_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def transform(ir: IR, passes: Sequence[PassStep]) -> IR:
    """Run `passes` in order on a copy of `ir`, verifying the IR after each one.

    A step is a registered name (`"relu6"`, `"split:S=4"`), a pass function, or a
    `(name or function, options)` pair. `ir` itself is never modified.
    """
    if not isinstance(ir, IR):
        raise SpecError(f"transform needs an IR, got {type(ir).__name__}",
                        expected="the result of nasir.load(...)")
    steps = [_resolve(step) for step in passes]
    ir.verify()
    current, done = ir.copy(), []
    for name, fn, options in steps:
        current = _run(name, fn, options, current, done)
        done.append(name)
    return current


def _resolve(step: PassStep) -> tuple[str, Pass, dict[str, Any]]:
    options: dict[str, Any] = {}
    if isinstance(step, tuple) and len(step) == 2 and isinstance(step[1], dict):
        step, options = step
    if isinstance(step, str):
        name, parsed = parse_pass(step)
        return name, get_pass(name), {**parsed, **options}
    if callable(step):
        return getattr(step, "__name__", type(step).__name__), step, dict(options)
    raise SpecError(f"not a pass: {shown(repr(step))}",
                    expected="a registered pass name, a function (ir, **options) -> IR, "
                             "or a (pass, options) pair")


def _check_options(name: str, fn: Pass, options: dict[str, Any]) -> None:
    """A SpecError naming an option the pass does not take, with the ones it does."""
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]  # after the IR
    except (TypeError, ValueError):  # no signature to read (a builtin): let the call decide
        return
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    known = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in options:
        if key not in known:
            raise SpecError(f"pass '{name}' has no option '{shown(key)}'"
                            f"{did_you_mean(key, known)}",
                            expected=(f"options of {name}: {', '.join(known)}" if known
                                      else f"{name} takes no options"))


def _run(name: str, fn: Pass, options: dict[str, Any], ir: IR, done: list[str]) -> IR:
    after = f" (after {', '.join(done)})" if done else ""
    _check_options(name, fn, options)
    token = ACTIVE_PASS.set(name)
    try:
        out = fn(ir, **options)
    except SpecError as err:
        if not err.message.startswith(f"pass '{name}'"):
            err.notes.append(Note(f"raised by pass '{name}'{after}"))
        raise
    except Exception as exc:  # a bug in the pass: a clear error naming it, not a traceback
        raise SpecError(f"pass '{name}' failed{after}: {type(exc).__name__}: {exc}") from exc
    finally:
        ACTIVE_PASS.reset(token)
    if not isinstance(out, IR):
        raise SpecError(f"pass '{name}' returned {type(out).__name__}, not an IR",
                        expected="a pass returns a new IR")
    try:
        out.verify()
    except IRError as err:
        err.notes.append(Note(f"the IR is invalid after pass '{name}'{after}"))
        raise
    return out
