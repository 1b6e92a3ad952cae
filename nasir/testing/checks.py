"""Cross-checks of nasir's static counts against what PyTorch measures on the compiled module.

Use them in your own tests: `assert_static_matches_torch(nasir.load("my.arch"))`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from nasir.backends.pytorch import to_module
from nasir.ir.graph import IR
from nasir.ops import get_op
from nasir.passes.costs import count_costs


@dataclass(frozen=True)
class Measured:
    static_params: int
    torch_params: int
    static_macs: int  # only ops that FlopCounterMode can see
    torch_macs: int


def torch_counts(ir: IR, device: str = "meta") -> tuple[int, int]:
    """What PyTorch measures on the compiled module: `sum(p.numel())` and FlopCounterMode/2
    over one batch-1 forward (on the meta device no weight is allocated)."""
    with torch.device(device):
        model = to_module(ir).eval()
        inputs = model.example_inputs(batch=1, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


def measure(ir: IR, device: str = "meta") -> Measured:
    """Static params/MACs next to `sum(p.numel())` and FlopCounterMode/2 (batch 1)."""
    report = count_costs(ir)
    visible = sum(t.macs for node_id, t in report.nodes.items()
                  if get_op(ir.node(node_id).op).flop_counter_visible)
    torch_params, torch_macs = torch_counts(ir, device)
    return Measured(report.total.params, torch_params, visible, torch_macs)


def assert_static_matches_torch(ir: IR) -> Measured:
    m = measure(ir)
    assert m.static_params == m.torch_params, f"params: static {m.static_params:,} != " \
        f"torch {m.torch_params:,}"
    assert m.static_macs == m.torch_macs, f"MACs: static {m.static_macs:,} != " \
        f"FlopCounterMode/2 {m.torch_macs:,}"
    return m
