"""Passes over the IR. Each module exposes one function with one contract; none mutates
its input. The transform passes register themselves when `nasir.passes.pipeline` first
looks one up."""

from nasir.passes.costs import CostReport, CountingPolicy, count_costs
from nasir.passes.shapes import infer_shapes

__all__ = ["CostReport", "CountingPolicy", "count_costs", "infer_shapes"]
