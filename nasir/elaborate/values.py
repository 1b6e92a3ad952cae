"""Run-time values of the spec language besides numbers, strings, bools and lists."""

from __future__ import annotations

from dataclasses import dataclass

from nasir.ir.graph import Shape


@dataclass(frozen=True)
class TensorValue:
    """A tensor flowing through a spec: the IR node that produces it, and its shape."""

    node: str
    shape: Shape

    def __str__(self) -> str:
        return f"tensor {'x'.join(map(str, self.shape))} from {self.node}"
