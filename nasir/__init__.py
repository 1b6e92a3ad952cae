"""nasir: a declarative graph-IR compiler for efficient CNN architectures.

Write an architecture once as an `.arch` spec; nasir parses it, elaborates it into an IR of
primitive ops (a DAG, viewable as a networkx graph), counts its costs statically, and
lowers it to PyTorch.

    >>> import nasir
    >>> ir = nasir.load("resnet20")            # a shipped spec, by name
    >>> nasir.stats(ir).total.params
    >>> model = nasir.compile("resnet20")      # a torch.nn.Module

The names below are imported when first used (PEP 562), so `import nasir` and the CLI
start quickly and only `compile` brings in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "compile": "nasir.api",
    "load": "nasir.api",
    "parse_shape": "nasir.api",
    "SourceLoc": "nasir.errors",
    "SpecError": "nasir.errors",
    "IR": "nasir.ir.graph",
    "CountingPolicy": "nasir.passes.costs",
    "count_costs": "nasir.passes.costs",
    "transform": "nasir.passes.pipeline",
    "load_weights": "nasir.weights",
}

if TYPE_CHECKING:
    from nasir.api import compile, load, parse_shape
    from nasir.errors import SourceLoc, SpecError
    from nasir.ir.graph import IR
    from nasir.passes.costs import CountingPolicy, count_costs
    from nasir.passes.pipeline import transform
    from nasir.weights import load_weights


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nasir' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


def stats(ir: IR, policy: str | CountingPolicy = "paper"):
    """Static cost report of shape-checked IR under a counting policy."""
    from nasir.passes.costs import CountingPolicy, count_costs

    if isinstance(policy, str):
        policy = CountingPolicy.parse(policy)
    return count_costs(ir, policy)


__all__ = ["IR", "CountingPolicy", "SourceLoc", "SpecError", "__version__", "compile",
           "count_costs", "load", "load_weights", "parse_shape", "stats",
           "transform"]
