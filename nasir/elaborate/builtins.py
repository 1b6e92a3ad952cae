"""The closed set of functions a spec may call on numbers, strings and lists.

Nothing here can reach Python at large: each entry is a small, total function, and any
misuse raises `BuiltinError`, which the elaborator reports at the call's location.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from nasir import limits


class BuiltinError(Exception):
    pass


def _number(name: str, v: Any) -> float | int:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BuiltinError(f"{name}() expects a number, got {type_name(v)}")
    return v


def make_divisible(v: Any, divisor: Any, min_value: Any = None) -> int:
    """Round `v` to a multiple of `divisor`, never more than 10% below `v` (MobileNet/GhostNet)."""
    v, divisor = _number("make_divisible", v), _number("make_divisible", divisor)
    if not isinstance(divisor, int) or divisor <= 0:
        raise BuiltinError("make_divisible() expects a positive integer divisor")
    floor_value = divisor if min_value is None else _number("make_divisible", min_value)
    new_v = max(floor_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


def _range(*args: Any) -> list[int]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool)
                                          for a in args):
        raise BuiltinError("range() expects 1 to 3 integers")
    if len(args) == 3 and args[2] == 0:
        raise BuiltinError("range() step must not be zero")
    values = range(*args)
    try:
        count = len(values)
    except OverflowError:  # more items than a machine word can count
        count = limits.MAX_LIST_ITEMS + 1
    if count > limits.MAX_LIST_ITEMS:
        raise BuiltinError(f"range() of more than {limits.MAX_LIST_ITEMS:,} items exceeds "
                           "the limit of list items (MAX_LIST_ITEMS)")
    return list(values)


def _int(v: Any) -> int:
    if isinstance(v, str):
        text = v.strip()
        # MAX_INT has 19 digits: a longer string cannot hold a valid int, and converting one
        # with thousands of digits is slow (Python refuses beyond 4300).
        if len(text) > 24 or not re.fullmatch(r"[+-]?[0-9_]+", text):
            raise BuiltinError(f"int() cannot convert {short_repr(v)}")
        return int(text)
    return int(_number("int", v))


def _sqrt(v: Any) -> float:
    v = _number("sqrt", v)
    if v < 0:
        raise BuiltinError("sqrt() of a negative number")
    return math.sqrt(v)


def _len(v: Any) -> int:
    if not isinstance(v, list | str):
        raise BuiltinError(f"len() expects a list or string, got {type_name(v)}")
    return len(v)


def _minmax(name: str, fn: Callable) -> Callable:
    def run(*args: Any) -> Any:
        values = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
        if not values:
            raise BuiltinError(f"{name}() of nothing")
        return fn(_number(name, v) for v in values)

    return run


def _unary(name: str, fn: Callable) -> Callable:
    def run(v: Any) -> Any:
        return fn(_number(name, v))

    return run


def _gcd(*args: Any) -> int:
    values = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise BuiltinError("gcd() expects integers")
    return math.gcd(*values)


def _enumerate(v: Any) -> list[list]:
    from nasir.elaborate.values import size_of

    if not isinstance(v, list):
        raise BuiltinError(f"enumerate() expects a list, got {type_name(v)}")
    if 2 * len(v) + size_of(v) > limits.MAX_LIST_ITEMS:
        raise BuiltinError(f"enumerate() of {len(v):,} items would exceed the limit of "
                           f"{limits.MAX_LIST_ITEMS:,} list items (MAX_LIST_ITEMS)")
    return [[i, item] for i, item in enumerate(v)]


def _sum(v: Any) -> int | float:
    if not isinstance(v, list):
        raise BuiltinError(f"sum() expects a list, got {type_name(v)}")
    return sum(_number("sum", x) for x in v)


def _str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | str):
        return str(v)
    raise BuiltinError(f"str() expects a number or string, got {type_name(v)}")


def _error(message: Any) -> None:
    """Let a spec reject its own arguments with a located message: `error("bad op " + op)`."""
    raise BuiltinError(message if isinstance(message, str) and len(message) <= 500
                       else short_repr(message, 500))


BUILTINS: dict[str, Callable[..., Any]] = {
    "error": _error,
    "ceil": _unary("ceil", math.ceil),
    "floor": _unary("floor", math.floor),
    "round": _unary("round", round),
    "abs": _unary("abs", abs),
    "int": _int,
    "float": _unary("float", float),
    "sqrt": _sqrt,
    "min": _minmax("min", min),
    "max": _minmax("max", max),
    "make_divisible": make_divisible,
    "gcd": _gcd,
    "len": _len,
    "range": _range,
    "enumerate": _enumerate,
    "sum": _sum,
    "str": _str,
}


def type_name(v: Any) -> str:
    """The spec-language name of a value's type."""
    from nasir.elaborate.values import StageValue, TensorValue

    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    if isinstance(v, TensorValue):
        return "tensor"
    if isinstance(v, StageValue):
        return f"stage {v.func}(...) (a call without its tensor input)"
    return type(v).__name__


def short_repr(value: Any, limit: int = 80) -> str:
    """`repr(value)` for messages, cut to about `limit` characters without walking all of a
    huge value (lists can hold a million items; strings a million characters)."""
    out: list[str] = []
    budget = [limit + 1]

    def emit(text: str) -> None:
        out.append(text)
        budget[0] -= len(text)

    def walk(v: Any, depth: int) -> None:
        if isinstance(v, list):
            if depth > 8:
                emit("[...]")
                return
            emit("[")
            for i, item in enumerate(v):
                if budget[0] <= 0:
                    return
                if i:
                    emit(", ")
                walk(item, depth + 1)
            emit("]")
        elif isinstance(v, str):
            emit(repr(v[:limit + 1]))
        elif isinstance(v, int | float | bool):
            emit(repr(v))
        else:
            emit(str(v))

    walk(value, 0)
    text = "".join(out)
    return text if len(text) <= limit else text[:limit - 3] + "..."
