"""AdderNet (Chen et al., CVPR 2020): the official ResNets, counted with mults and adds apart."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nasir
from nasir.layers.adder import Adder2d
from nasir.testing.checks import assert_static_matches_torch


def adder_nodes(ir):
    return [n.id for n in ir.nodes() if n.op == "adder"]


def test_resnet20_matches_the_official_code_exactly():
    """papers.md §3 [calc]: 272,484 params; 40,813,184 MACs, 40,370,176 of them in adders."""
    ir = nasir.load("addernet20")
    report = nasir.stats(ir)
    assert report.total.params == 272_484
    assert report.total.macs == 40_813_184
    assert sum(report.nodes[n].macs for n in adder_nodes(ir)) == 40_370_176
    assert_static_matches_torch(ir)


def test_adder_layers_perform_no_multiplications():
    """The point of AdderNet: the only multiplications left are the first conv and the fc."""
    ir = nasir.load("addernet20")
    report = nasir.stats(ir)
    assert all(report.nodes[n].muls == 0 for n in adder_nodes(ir))
    assert report.total.muls == 442_368 + 640  # first conv + 1x1-conv classifier
    assert sum(report.nodes[n].adds for n in adder_nodes(ir)) == 2 * 40_370_176


def test_resnet32_reproduces_table1_operation_counts():
    """Table 1: ResNet-32 CNN 69.12M mul; AddNN 0 mul and 138.24M add (2 per MAC)."""
    report = nasir.stats(nasir.load("addernet32"))
    assert report.total.macs == 69_124_736
    assert abs(report.total.adds - 138.24e6) / 138.24e6 < 0.01


def test_resnet50_is_torchvision_resnet50_plus_the_official_bn_after_fc():
    """resnet50.py: fc is a 1x1 conv with bias (2048*1000 + 1000) followed by BN(1000)."""
    ir = nasir.load("addernet_resnet50")
    report = nasir.stats(ir)
    assert report.total.params == 25_557_032 + 2 * 1000
    assert report.total.macs == nasir.stats(nasir.load("resnet50")).total.macs
    assert_static_matches_torch(ir)


def test_compiled_addernet_trains_one_step():
    model = nasir.compile("addernet20")
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 3])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    grads = [m.weight.grad for m in model.modules() if isinstance(m, Adder2d)]
    # 18 adder 3x3 layers in 9 blocks, and 2 adder 1x1 downsampling shortcuts
    assert len(grads) == 18 + 2 and all(g is not None and torch.isfinite(g).all() for g in grads)
    # adaptive learning rate: every adder layer's gradient has norm eta * sqrt(numel)
    g = grads[0]
    assert torch.isclose(g.norm(), torch.tensor(0.2 * g.numel() ** 0.5), rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(cin=st.integers(1, 12), out=st.integers(1, 12), k=st.sampled_from([1, 3, 5]),
       stride=st.sampled_from([1, 2]), size=st.integers(5, 12), bias=st.booleans())
def test_adder_static_cost_equals_the_compiled_layer(cin, out, k, stride, size, bias):
    text = f"""network n() {{ input x: {cin}x{size}x{size}
        return x >> adder({out}, {k}, stride={stride}, bias={str(bias).lower()}) }}"""
    ir = nasir.load(text, text=True)
    report = nasir.stats(ir)
    model = nasir.compile(ir)
    y = model(torch.randn(1, cin, size, size))
    assert tuple(y.shape[1:]) == ir.node(ir.output).shape
    assert report.total.params == sum(p.numel() for p in model.parameters())
    assert report.total.macs == y[0].numel() * cin * k * k
    assert report.total.muls == 0
