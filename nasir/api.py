"""nasir's Python entry points: spec (path, shipped name or text) -> IR -> torch module."""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasir.catalog import locate
from nasir.elaborate import build_ir
from nasir.elaborate.builtins import short_repr
from nasir.errors import SpecError
from nasir.ir.graph import IR, Shape
from nasir.limits import MAX_INT, MAX_LIST_ITEMS, MAX_NESTING, MAX_STR_CHARS
from nasir.parse.loader import load_text


def load(spec: str | Path, network: str | None = None, input: Shape | str | None = None,
         text: bool = False, import_paths: Sequence[str | Path] = (), **params: Any) -> IR:
    """Elaborate a spec into shape-checked IR.

    `spec` is a path, a shipped network name (`"resnet20"`), or spec text when `text=True`;
    keyword arguments override the network's parameters (like `--set`); `import_paths` are
    extra folders searched by `import`. Every problem with the spec or with these arguments
    raises `SpecError`, nothing else.
    """
    if not isinstance(spec, str | Path):
        raise SpecError(f"a spec must be a path, a shipped network name or spec text, got "
                        f"{type(spec).__name__}", expected="a str or pathlib.Path")
    if network is not None and not isinstance(network, str):
        raise SpecError(f"network= must be a network name, got {type(network).__name__}",
                        expected="a str such as 'resnet20'")
    if not text and ("\0" in str(spec) or len(str(spec)) > 4096):
        raise SpecError("not a spec path or network name (too long, or a NUL character)",
                        expected="a path to an .arch file, a shipped network name, or "
                                 "text=True for spec text")
    shape = _input_shape(input)
    values = {name: _keyword_value(name, value) for name, value in params.items()}
    paths = _import_paths(import_paths)
    limit = sys.getrecursionlimit()
    # MAX_CALL_DEPTH nested block calls take a few Python frames each; the limits of
    # nasir.limits bound the depth, this only makes room for it.
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        if text:
            program = load_text(str(spec), import_paths=paths)
            name = network or _only_network(program)
        else:
            program, name = locate(spec, network, import_paths=paths)
        return build_ir(program, name, values, shape)  # shapes inferred as nodes are made
    except RecursionError:  # a last resort: the limits should have stopped it first
        raise SpecError("the spec nests too deeply (nesting too deep for nasir to follow)",
                        expected="fewer levels of nesting (see Limits in docs/language.md)") \
            from None
    finally:
        sys.setrecursionlimit(limit)


def _input_shape(input: Any) -> Shape | None:
    """`input=` as a shape tuple: None, '3x32x32', or 1 to 3 positive ints."""
    if input is None:
        return None
    if isinstance(input, str):
        return parse_shape(input)
    if isinstance(input, tuple | list) and 1 <= len(input) <= 3 and all(
            _is_int(d) and 0 < d <= MAX_INT for d in input):
        return tuple(int(d) for d in input)
    raise SpecError(f"bad input shape {short_repr(input)}",
                    expected="1 to 3 positive ints, e.g. (3, 224, 224) or '3x224x224'")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_bool(value: Any) -> bool:
    """A Python bool, or numpy's bool_ when numpy is loaded (numpy itself is not needed)."""
    np = sys.modules.get("numpy")
    return isinstance(value, bool) or (np is not None and isinstance(value, np.bool_))


def _keyword_value(name: str, value: Any) -> Any:
    """A keyword override as a spec value: bool, int, finite float, str or list of them,
    within the limits on ints, strings and lists (numpy scalars are accepted)."""
    items = [0]

    def convert(v: Any, depth: int) -> Any:
        if _is_bool(v):
            return bool(v)
        if isinstance(v, numbers.Integral):
            if not -MAX_INT <= int(v) <= MAX_INT:
                raise SpecError(f"keyword {name}= exceeds the limit of {MAX_INT:,} for the "
                                "magnitude of an integer (MAX_INT)")
            return int(v)
        if isinstance(v, numbers.Real):
            f = float(v)
            if not math.isfinite(f):
                raise SpecError(f"keyword {name}= is not a finite number: {f}")
            return f
        if isinstance(v, str):
            if len(v) > MAX_STR_CHARS:
                raise SpecError(f"keyword {name}= is a string longer than the limit of "
                                f"{MAX_STR_CHARS:,} characters (MAX_STR_CHARS)")
            return v
        if isinstance(v, list | tuple):
            items[0] += len(v)
            if items[0] > MAX_LIST_ITEMS or depth >= MAX_NESTING:
                raise SpecError(f"keyword {name}= is a list beyond the limits of "
                                f"{MAX_LIST_ITEMS:,} items (MAX_LIST_ITEMS) or {MAX_NESTING} "
                                "levels of nesting (MAX_NESTING)")
            return [convert(item, depth + 1) for item in v]
        raise SpecError(f"keyword {name}= has a value of type {type(v).__name__}",
                        expected="a bool, int, float, str, or a list of them")

    return convert(value, 0)


def _import_paths(paths: Any) -> list[Path]:
    if isinstance(paths, str | Path) or not isinstance(paths, Sequence | tuple | list):
        raise SpecError("import_paths= must be a list of folders",
                        expected="e.g. import_paths=['specs/lib']")
    if not all(isinstance(p, str | Path) for p in paths):
        raise SpecError("import_paths= must hold only str or pathlib.Path folders")
    return [Path(p) for p in paths]


def _only_network(program) -> str:
    """The one network the text itself defines (imported networks don't count)."""
    own = program.own_networks()
    if len(own) != 1:
        raise SpecError("spec text must define exactly one network, or pass network=",
                        expected="one of: " + (", ".join(own) or "(none)"))
    return own[0]


def compile(spec: str | Path | IR, network: str | None = None,
            input: Shape | str | None = None, *, max_bytes: int | None = None,
            inplace: bool = True, **params: Any):
    """Build a trainable `torch.nn.Module` from a spec (or from IR).

    A network whose float32 parameters and batch-norm buffers would take more than
    `max_bytes` (default: half of physical memory) is refused with `SpecError` before any
    weight is allocated. With `inplace` (the default) ReLUs and residual sums overwrite
    tensors nothing else reads, as hand-written PyTorch does; the function and gradients are
    the same, but forward hooks see overwritten activations: pass `inplace=False` to keep them.
    """
    from nasir.backends.pytorch import to_module

    ir = spec if isinstance(spec, IR) else load(spec, network, input, **params)
    return to_module(ir, max_bytes=max_bytes, inplace=inplace)


def parse_shape(text: str) -> Shape:
    """'3x224x224' -> (3, 224, 224)."""
    bad = SpecError(f"bad shape {short_repr(text)}",
                    expected="1 to 3 positive integers such as 3x224x224")
    if not isinstance(text, str) or len(text) > 100:
        raise bad
    parts = text.strip().lower().replace(",", "x").split("x")
    if not all(p.strip().isdecimal() and p.strip().isascii() for p in parts):
        raise bad
    shape = tuple(int(p) for p in parts)
    if not 1 <= len(shape) <= 3 or min(shape) <= 0 or max(shape) > MAX_INT:
        raise bad
    return shape
