"""`nasir print` keeps structure: one block per scope structure, differing constants lifted
into parameters, and the text elaborates back to an equal IR."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings

import nasir
from nasir.backends.arch_printer import to_arch, to_flat_arch, to_readable_arch
from nasir.catalog import shipped_networks
from nasir.cli import main
from nasir.ir.graph import IR
from nasir.testing.strategies import irs

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reelaborated(text: str) -> IR:
    return nasir.load(text, text=True)


def test_every_shipped_network_prints_readably_and_elaborates_back_equal() -> None:
    failed = []
    for name in sorted(shipped_networks()):
        ir = nasir.load(name)
        if reelaborated(to_readable_arch(ir)).signature() != ir.signature():
            failed.append(name)
    assert failed == []


@pytest.mark.parametrize(("name", "passes"), [
    ("resnet20", ["ghost"]), ("resnet50", ["adder"]), ("resnet20", ["split:S=2"]),
    ("ghostnet_0_5", ["split:S=2", "fuse"]), ("condensenet86", ["condense"]),
])
def test_transformed_networks_print_readably(name: str, passes: list[str]) -> None:
    ir = nasir.transform(nasir.load(name), passes)
    assert reelaborated(to_readable_arch(ir)).signature() == ir.signature()


@PROPERTY
@given(irs())
def test_random_networks_print_readably_and_elaborate_back_equal(ir: IR) -> None:
    assert reelaborated(to_readable_arch(ir)).signature() == ir.signature()


def test_one_block_per_structure_with_the_differing_widths_as_parameters() -> None:
    ir = nasir.load("resnet20")
    text = to_readable_arch(ir)
    blocks = re.findall(r"^block (\w+)\(", text, flags=re.M)
    # nine residual blocks of two structures (with and without a projection shortcut),
    # and the projection itself
    assert sorted(blocks) == ["basic", "basic_2", "projection"]
    # both convs of a block always have the same width: one parameter
    assert "block basic(x, conv1_out: int = 16) {" in text
    # layer1's three identical blocks are one loop; layer2 and layer3 write their three
    calls = re.findall(r"= (basic|basic_2)\(", text)
    assert len(calls) == 7 and "for i in range(0, 3) {" in text
    # every node is written once per structure, not once per instance
    assert len(text.splitlines()) < len(to_flat_arch(ir).splitlines()) * 0.6


def test_an_attribute_left_at_its_default_is_not_written() -> None:
    text = to_readable_arch(nasir.load("resnet20"))
    assert "dilation=" not in text and "eps=" not in text
    assert "conv(x, 16, 3) as conv1" in text


def test_print_shows_the_block_a_pass_spliced(capsys) -> None:
    assert main(["print", "resnet20", "--pass", "ghost"]) == 0
    text = capsys.readouterr().out
    assert "block ghost_module(" in text
    assert main(["print", "resnet20", "--flat"]) == 0
    assert "block " not in capsys.readouterr().out


def test_to_arch_prints_the_flat_form_when_the_block_form_does_not_elaborate_back(
        monkeypatch) -> None:
    import nasir.backends.arch_printer as printer

    ir = nasir.load("resnet20")
    assert to_arch(ir) == to_readable_arch(ir)
    assert to_arch(ir, flat=True) == to_flat_arch(ir)
    wrong = to_readable_arch(ir).replace("conv(x, 16, 3) as conv1", "conv(x, 17, 3) as conv1")
    monkeypatch.setattr(printer, "to_readable_arch", lambda _: wrong)
    assert to_arch(ir) == to_flat_arch(ir)


def test_chained_instances_with_numbered_labels_become_a_loop() -> None:
    ir = nasir.load("resnet110")  # 18 blocks a stage, labelled 0..17
    text = to_readable_arch(ir)
    assert "for i in range(0, 18) {" in text
    assert "            y = basic(y) as (i)" in text
    assert len(re.findall(r"^\s+for \w+ in range\(", text, flags=re.M)) == 3
    assert len(text.splitlines()) < 70  # the flat form has one line per node: 600+
    assert reelaborated(text).signature() == ir.signature()
