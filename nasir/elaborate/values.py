"""Run-time values of the spec language besides numbers, strings and bools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasir.errors import SourceLoc
from nasir.ir.graph import Shape


@dataclass(frozen=True)
class TensorValue:
    """A tensor flowing through a spec: the IR node that produces it, and its shape."""

    node: str
    shape: Shape

    def __str__(self) -> str:
        return f"tensor {'x'.join(map(str, self.shape))} from {self.node}"


@dataclass(frozen=True)
class StageValue:
    """A block or op called without its tensor input: `wrn_member(28, 7)`. Applying it to
    tensors (by piping, or from a construct such as `split`) completes the call."""

    func: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, tuple[Any, SourceLoc]] = field(default_factory=dict)
    loc: SourceLoc | None = None

    def __str__(self) -> str:
        return f"stage {self.func}(...)"


class ListValue(list):
    """A list built by a spec, with its measure cached: `size` counts every item of the list
    and of the lists nested in it (a list used twice counts twice), `depth` is its nesting,
    `tensors` whether any tensor is inside. Caching keeps the limit checks O(len) when lists
    of lists are built, so `a = [a, a]` in a loop is stopped by MAX_LIST_ITEMS, not by
    memory or exponential time."""

    size: int
    depth: int
    tensors: bool


def measure(items: list) -> tuple[int, int, bool]:
    """(size, depth, has tensors) of a list about to be built from `items`."""
    size, depth, tensors = len(items), 0, False
    for item in items:
        if isinstance(item, list):
            s, d, t = (item.size, item.depth, item.tensors) if isinstance(item, ListValue) \
                else measure(item)
            size, depth, tensors = size + s, max(depth, d), tensors or t
        elif isinstance(item, TensorValue):
            tensors = True
    return size, depth + 1, tensors


def size_of(value: Any) -> int:
    """Items in `value` counted with nested lists (0 for a non-list)."""
    if isinstance(value, ListValue):
        return value.size
    return measure(value)[0] if isinstance(value, list) else 0


def list_value(items: list, measured: tuple[int, int, bool] | None = None) -> ListValue:
    """Wrap `items` (already checked against the limits) as a ListValue."""
    result = ListValue(items)
    result.size, result.depth, result.tensors = measured or measure(items)
    return result
