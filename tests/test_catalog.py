"""Shipped specs: addressable by name, every one elaborates and checks."""

from __future__ import annotations

import pytest

import nasir
from nasir.catalog import shipped_networks
from nasir.parse.loader import load_program, shipped_specs_dir


def test_the_name_scan_finds_exactly_the_networks_a_parse_finds():
    scanned = shipped_networks()
    parsed = {name: path.name for path in shipped_specs_dir().glob("*.arch")
              for name in load_program(path).own_networks()}
    assert {k: v.name for k, v in scanned.items()} == parsed


@pytest.mark.parametrize("name", sorted(shipped_networks()))
def test_every_shipped_network_elaborates_with_its_defaults(name: str):
    ir = nasir.load(name)
    assert ir.output is not None and all(n.shape for n in ir.nodes())
