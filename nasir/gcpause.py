"""Python's cyclic garbage collector paused around nasir's bulk phases.

Elaboration, shape inference, cost counting and lowering allocate many objects that live as
long as the IR and create almost no reference cycles; the collector would rescan them again
and again as they pile up (about half the time of a 100k-node network). These phases run
with it paused and restore its previous state afterwards, so nothing is left disabled and
nested phases are free. Memory is not at risk: objects without cycles are still freed at once
by reference counting, and the rare cycles are collected after the phase.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (if it was on, it is switched back on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def without_gc(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: `fn` runs inside `gc_paused()`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with gc_paused():
            return fn(*args, **kwargs)

    return wrapper
