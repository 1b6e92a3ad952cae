"""Extending nasir from user code: a new op is one OpDef subclass, registered once."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import nasir
from nasir.backends.python_source import to_python
from nasir.ops import Cost, Layer, OpDef, register, unregister
from nasir.ops.base import ACT, numel

LAYER_MODULE = textwrap.dedent('''
    import torch
    from torch import nn

    class Swish(nn.Module):
        """x * sigmoid(beta * x) with a learned beta per channel."""

        def __init__(self, channels: int):
            super().__init__()
            self.beta = nn.Parameter(torch.ones(channels, 1, 1))

        def forward(self, x):
            return x * torch.sigmoid(self.beta * x)
''')


@pytest.fixture
def swish_op(tmp_path, monkeypatch):
    (tmp_path / "my_layers.py").write_text(LAYER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))

    class Swish(OpDef):
        name = "learned_swish"
        doc = "x * sigmoid(beta * x), beta learned per channel"

        def cost(self, a, ins, out):
            n = numel(out)
            return Cost(params=out[0], muls=2 * n, adds=1, other=2 * n, kind=ACT)

        def lower(self, a, ins, out):
            return Layer("my_layers.Swish", (out[0],))

    register(Swish)
    yield
    unregister("learned_swish")
    sys.modules.pop("my_layers", None)


def test_a_registered_op_is_usable_in_specs_counted_and_compiled(swish_op):
    ir = nasir.load("""network net() { input x: 3x8x8
        return x >> conv(4, 3) >> learned_swish }""", text=True)
    report = nasir.stats(ir, "all")
    assert report.nodes["learned_swish"].params == 4
    model = nasir.compile(ir)
    assert sum(p.numel() for p in model.parameters()) == report.total.params
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4, 8, 8)
    assert "from my_layers import Swish" in to_python(ir)


def test_unknown_ops_stay_errors_after_unregistering(swish_op):
    unregister("learned_swish")
    with pytest.raises(nasir.SpecError, match="unknown op or block 'learned_swish'"):
        nasir.load("""network net() { input x: 3x8x8
            return x >> learned_swish }""", text=True)
