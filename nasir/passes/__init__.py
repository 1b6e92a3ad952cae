"""Passes over the IR. Each module exposes one function with one contract; none mutates
its input."""

from nasir.passes import adder, condense, fuse, ghost, split  # noqa: F401  (registers passes)
from nasir.passes.costs import CostReport, CountingPolicy, count_costs
from nasir.passes.shapes import infer_shapes

__all__ = ["CostReport", "CountingPolicy", "count_costs", "infer_shapes"]
