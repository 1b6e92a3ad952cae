"""The `fuse` pass: an ensemble's identical members as one network of grouped layers, the
same function as the separate members (<= 1e-5) in one forward call."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_refused, load_pass_fixture, run_real_cli
from hypothesis import HealthCheck, given, settings
from torch import nn

import nasir
from nasir.errors import SpecError
from nasir.ir.graph import IR
from nasir.passes.costs import count_costs
from nasir.passes.fuse import ensemble_members, fuse_state_dict
from nasir.passes.split import scale_widths
from nasir.testing.checks import assert_static_matches_torch
from nasir.testing.equivalence import max_abs_diff, randomize_for_comparison
from nasir.testing.strategies import irs

PROPERTY = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fused_and_separate(ir: IR, batch: int = 2, seed: int = 0):
    """(separate module, fused module with the separate one's weights, an input)."""
    fused_ir = nasir.transform(ir, ["fuse"])
    separate, fused = nasir.compile(ir), nasir.compile(fused_ir)
    x = torch.randn(batch, *ir.node(ir.inputs[0]).shape,
                    generator=torch.Generator().manual_seed(seed))
    randomize_for_comparison(separate, x, seed)
    members, _ = ensemble_members(ir)
    fused.load_state_dict(fuse_state_dict(separate.state_dict(), members))
    return separate.eval(), fused.eval(), x


def assert_same_function(ir: IR, tolerance: float = 1e-5) -> None:
    separate, fused, x = fused_and_separate(ir)
    diff, scale = max_abs_diff(fused, separate, x)
    assert diff <= tolerance * max(1.0, scale), (diff, scale)


def test_fixture_is_the_hand_written_fused_network() -> None:
    out = nasir.transform(load_pass_fixture("fuse_small.arch"), ["fuse"])
    assert out.signature() == load_pass_fixture("fuse_small.fuse.arch").signature()
    assert {n.made_by for n in out.nodes() if n.op != "input"} == {"fuse"}


@pytest.mark.parametrize(("name", "passes"), [
    ("resnet20", ["split:S=2"]),
    ("resnet20", ["split:S=4"]),
    ("ghostnet_0_5", ["split:S=2"]),  # concat + slice (ghost modules), SE gates
    ("splitnet_wrn28_10_c10_s2", []),  # the shipped SplitNet
])
def test_fused_members_compute_the_ensembles_function(name: str, passes: list[str]) -> None:
    ir = nasir.load(name)
    assert_same_function(nasir.transform(ir, passes) if passes else ir)


def test_fused_network_has_the_ensembles_counts_and_one_member_of_layers() -> None:
    ir = nasir.transform(nasir.load("resnet20"), ["split:S=4"])
    fused = nasir.transform(ir, ["fuse"])
    before, after = count_costs(ir).total, count_costs(fused).total
    assert (after.params, after.macs) == (before.params, before.macs)
    assert_static_matches_torch(fused)
    convs = [n for n in fused.nodes() if n.op == "conv"]
    assert len(convs) == len([n for n in ir.nodes() if n.op == "conv"]) // 4
    assert fused.node("fused/layer2/0/conv1").attrs.out == 4 * ir.node(
        "net0/layer2/0/conv1").attrs.out
    assert fused.node("fused/layer2/0/conv1").attrs.groups == 4


def test_one_forward_call_runs_every_member() -> None:
    ir = nasir.transform(nasir.load("resnet20"), ["split:S=2"])
    fused = nasir.compile(nasir.transform(ir, ["fuse"]))
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    calls = []
    for conv in convs:
        conv.register_forward_hook(lambda *_: calls.append(1))
    fused(torch.randn(1, 3, 32, 32))
    assert len(calls) == len(convs) == len([n for n in ir.nodes() if n.op == "conv"]) // 2
    assert all(k.startswith("fused.") for k in fused.state_dict())


def test_members_that_differ_are_refused() -> None:
    text = """
    network two() {
        input x: 3x8x8
        a = x >> conv(4, 3) as c >> gap >> flatten >> linear(2) as fc
        b = x >> conv(8, 3) as c2 >> gap >> flatten >> linear(2) as fc2
        scope net0 { p = a >> identity as out }
        scope net1 { q = b >> identity as out }
        return ensemble(p, q)
    }
    """
    with pytest.raises(SpecError, match="pass 'fuse'"):
        nasir.transform(nasir.load(text, text=True), ["fuse"])


def test_a_network_that_is_no_ensemble_is_refused_with_exit_2() -> None:
    with pytest.raises(SpecError, match="needs an ensemble of two or more members"):
        nasir.transform(nasir.load("resnet20"), ["fuse"])
    assert_refused(run_real_cli("stats", "resnet20", "--pass", "fuse"))


def test_adder_members_are_refused_naming_the_layer() -> None:
    ir = nasir.transform(nasir.load("resnet20"), ["adder", "split:S=2"])
    with pytest.raises(SpecError, match="cannot fuse adder at net0/"):
        nasir.transform(ir, ["fuse"])


def test_split_then_fuse_on_the_command_line() -> None:
    result = run_real_cli("stats", "resnet20", "--pass", "split:S=2", "--pass", "fuse",
                          "--depth", "0")
    assert result.returncode == 0, result.stderr
    assert "fused" not in result.stderr


@PROPERTY
@given(irs())
def test_fusing_any_split_network_keeps_its_function_and_counts(ir: IR) -> None:
    split = nasir.transform(scale_widths(ir, 4, 1), ["split:S=2"])
    fused = nasir.transform(split, ["fuse"])
    assert split.signature() == nasir.transform(scale_widths(ir, 4, 1),
                                                ["split:S=2"]).signature()
    assert count_costs(fused).total.params == count_costs(split).total.params
    assert count_costs(fused).total.macs == count_costs(split).total.macs
    assert_static_matches_torch(fused)
    assert_same_function(split, tolerance=1e-4)
