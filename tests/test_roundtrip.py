"""Every paper construct survives the backends: .arch printing and generated Python."""

from __future__ import annotations

import types

import pytest
import torch

import nasir
from nasir.backends.arch_printer import to_arch
from nasir.backends.python_source import to_python
from nasir.catalog import shipped_networks
from nasir.testing.generated import build_generated

# One network per paper construct: ghost modules (slices, SE), NASNet cells (shift,
# drop_path), adder layers, learned group convs, DARTS cells (zero, dilated dw), ensembles.
NETWORKS = ["ghostnet_0_5", "nasnet_a_cifar", "addernet20", "condensenet86", "cars_a_cifar10",
            "splitnet_wrn28_10_c100_s2"]


@pytest.mark.parametrize("name", NETWORKS)
def test_printed_arch_elaborates_to_an_equal_ir(name: str):
    ir = nasir.load(name)
    assert nasir.load(to_arch(ir), text=True).signature() == ir.signature()


@pytest.mark.parametrize("name", ["ghostnet_0_5", "nasnet_a_cifar", "condensenet86",
                                  "cars_a_cifar10"])
def test_generated_python_is_the_compiled_module(name: str, tmp_path):
    ir = nasir.load(name)
    generated, compiled = build_generated(ir, tmp_path).eval(), nasir.compile(ir).eval()
    assert list(generated.state_dict()) == list(compiled.state_dict())
    generated.load_state_dict(compiled.state_dict())
    x = compiled.example_inputs(batch=1)
    with torch.no_grad():
        torch.testing.assert_close(generated(*x), compiled(*x))


def test_blocks_differing_only_in_widths_share_one_parametrised_class():
    source = to_python(nasir.load("resnet20"))
    # 9 basic blocks: the 7 identity-shortcut ones share `Basic`, the 2 projecting ones
    # share `Basic_2`; their widths are constructor arguments.
    # (the blocks are labelled 0, 1, 2 as in torchvision: attributes by add_module)
    assert source.count(", Basic(in_channels=") == 7
    assert "self.add_module('0', Basic_2(in_channels=16, out_channels=32))" in source
    assert "self.add_module('0', Basic_2(in_channels=32, out_channels=64))" in source
    assert "def __init__(self, in_channels) -> None:" in source
    assert source.count("\nclass ") == 7  # Basic, Basic_2, Projection, 3 stages, Resnet20


@pytest.mark.parametrize("name", sorted(shipped_networks()))
def test_every_shipped_network_prints_and_generates_consistently(name: str):
    """Both torch backends name every parameter alike, and the printed .arch re-parses."""
    ir = nasir.load(name)
    assert nasir.load(to_arch(ir), text=True).signature() == ir.signature()
    module = types.ModuleType(f"gen_{name}")
    exec(compile(to_python(ir), module.__name__, "exec"), module.__dict__)  # nasir's output
    with torch.device("meta"):  # module trees and names, no weights allocated
        generated, compiled = module.build(), nasir.compile(ir)
    assert list(generated.state_dict()) == list(compiled.state_dict())
