"""Run-time values of the spec language besides numbers, strings, bools and lists."""

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
