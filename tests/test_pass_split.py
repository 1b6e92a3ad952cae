"""The `split` pass (SplitNet, Zhao et al., arXiv 2011.14660): the paper's width tables, the
official WRN division by widen factor, tied widths, groups mode, errors and laws."""

from __future__ import annotations

import math

import pytest
from conftest import assert_finite_json, assert_refused, load_pass_fixture, run_real_cli
from hypothesis import HealthCheck, given, settings

import nasir
from nasir.errors import SpecError
from nasir.ir.graph import IR
from nasir.passes.costs import count_costs
from nasir.passes.split import member_scope, scale_widths
from nasir.testing.checks import assert_static_matches_torch
from nasir.testing.strategies import irs

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def members(ir: IR) -> list[str]:
    """The top-level scopes of `ir`, in order."""
    return sorted({n.id.split("/")[0] for n in ir.nodes() if "/" in n.id})


def without_prefix(ir: IR, prefix: str) -> list[tuple]:
    """The member's nodes with `prefix/` taken off ids and inputs."""
    cut = len(prefix) + 1
    return [(n.id[cut:], n.op, n.attrs, tuple(i[cut:] if i.startswith(prefix + "/") else i
                                              for i in n.inputs), n.shape)
            for n in ir.nodes() if n.id.startswith(prefix + "/")]


def test_fixture_is_the_hand_written_split_construct() -> None:
    out = nasir.transform(load_pass_fixture("small.arch"), ["split:S=2"])
    assert out.signature() == load_pass_fixture("small.split.arch").signature()
    assert out.node(out.output).made_by == "split"


@pytest.mark.parametrize(("S", "stem"), [(2, 12), (4, 8)])
def test_cifar_resnet110_base_width_16_becomes_12_and_8(S: int, stem: int) -> None:
    out = nasir.transform(nasir.load("resnet110"), [f"split:S={S}"])
    assert members(out) == [member_scope(i) for i in range(S)]
    net0 = [n for n in out.nodes() if n.op == "conv" and n.id.startswith("net0/")]
    assert net0[0].attrs.out == stem
    # every width is rebuilt from the new unit: the last stage has 4 x the base width
    assert max(n.attrs.out for n in net0) == 4 * stem


@pytest.mark.parametrize(("S", "base"), [(2, 44), (4, 32), (8, 24)])
def test_imagenet_resnet50_base_width_64_becomes_44_32_24(S: int, base: int) -> None:
    original = nasir.load("resnet50")
    out = nasir.transform(original, [f"split:S={S}"])
    widths = {n.id.split("/", 1)[1]: n.attrs.out for n in out.nodes()
              if n.op == "conv" and n.id.startswith("net0/")}
    before = {n.id: n.attrs.out for n in original.nodes() if n.op == "conv"}
    assert widths == {k: v // 64 * base for k, v in before.items()}
    classifier = [n for n in out.nodes() if n.op == "linear"]
    assert len(classifier) == S and {n.attrs.out for n in classifier} == {1000}


@pytest.mark.parametrize("S", [2, 4])
def test_wrn28_10_divided_by_widen_is_the_shipped_split_network(S: int) -> None:
    out = nasir.transform(nasir.load("splitnet_wrn28_10_c100_s1"), [f"split:S={S},by=widen"])
    assert out.signature() == nasir.load(f"splitnet_wrn28_10_c100_s{S}").signature()


def test_members_are_equal_and_read_the_network_input() -> None:
    out = nasir.transform(nasir.load("resnet20"), ["split:S=3,mode=softmax_mean"])
    first = without_prefix(out, "net0")
    assert all(without_prefix(out, f"net{i}") == first for i in (1, 2))
    assert out.node(out.output).attrs.mode == "softmax_mean"
    assert [n.inputs for n in out.nodes() if n.id.endswith("/conv1")
            and n.id.count("/") == 1] == [("x",)] * 3


def test_each_member_has_about_one_over_s_of_the_parameters() -> None:
    original = count_costs(nasir.load("resnet50")).total.params
    report = count_costs(nasir.transform(nasir.load("resnet50"), ["split:S=4"]))
    member = report.scopes["net0"].params
    # (32/64)^2 of the conv weights, plus an undivided 1000-way classifier
    assert original / 4 * 0.9 < member < original / 4 * 1.2
    assert report.total.params == 4 * member


def test_widths_tied_through_concat_slice_and_se_gates_stay_consistent() -> None:
    ir = nasir.load("ghostnet_0_5")  # ghost modules (concat + slice), SE gates (mul)
    out = nasir.transform(ir, ["split:S=2"])
    out.verify()
    assert_static_matches_torch(out)


RESNEXT = """
network tiny_resnext() {
    input x: 3x16x16
    y = x >> conv(32, 3) as stem >> bn >> relu
    scope block1 {
        z = y >> conv(64, 1) as conv1 >> bn >> relu
        z = z >> conv(64, 3, groups=8) as conv2 >> bn >> relu
        z = z >> conv(32, 1) as conv3 >> bn
        y = y + z >> relu
    }
    return y >> gap >> flatten >> linear(10) as fc
}
"""


def test_groups_mode_divides_the_cardinality_and_the_widths_it_spans() -> None:
    out = nasir.transform(nasir.load(RESNEXT, text=True), ["split:S=2,groups=true"])
    conv2 = out.node("net0/block1/conv2").attrs
    assert (conv2.groups, conv2.out) == (4, 32)
    assert out.node("net0/block1/conv1").attrs.out == 32
    assert out.node("net0/stem").attrs.out == 32  # not spanned by any group: unchanged
    assert out.node("net0/block1/conv3").attrs.out == 32


def test_a_depthwise_conv_stays_depthwise() -> None:
    out = nasir.transform(load_pass_fixture("small.arch"), ["split:S=4"])
    dw = out.node("net0/body/dw")
    assert dw.attrs.groups == out.node("net0/body/relu").shape[0] == dw.attrs.out


@pytest.mark.parametrize(("step", "message"), [
    ("split:S=1", "from 2 to 64 (the limit MAX_SPLIT)"),
    ("split:S=65", "MAX_SPLIT"),
    ("split:S=2,by=nope", "by=nope is not an int parameter"),
    ("split:S=2,groups=true", "has no grouped conv"),
    ("split:S=2,mode=median", "not an ensemble mode"),
    ("split:S=2,align=0", "MAX_ALIGN"),
])
def test_bad_options_are_spec_errors(step: str, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        nasir.transform(nasir.load("resnet20"), [step])


def test_an_ensemble_of_several_members_is_not_split_again() -> None:
    with pytest.raises(SpecError, match="already is an ensemble of 2 members"):
        nasir.transform(nasir.load("splitnet_wrn28_10_c100_s2"), ["split:S=2"])


def test_by_needs_a_spec_file() -> None:
    ir = nasir.load("network n(w: int = 8) {\n input x: 3x8x8\n return x >> conv(w, 3) "
                    ">> gap >> flatten >> linear(2)\n}\n", text=True)
    with pytest.raises(SpecError, match="needs the spec file"):
        nasir.transform(ir, ["split:S=2,by=w"])


def test_the_real_command_refuses_a_bad_split_with_exit_2() -> None:
    result = run_real_cli("stats", "resnet20", "--pass", "split:S=0")
    assert_refused(result)
    assert "MAX_SPLIT" in result.stderr


@PROPERTY
@given(irs())
def test_split_of_any_network_verifies_counts_exactly_and_leaves_its_input(ir: IR) -> None:
    wide = scale_widths(ir, 8, 1)  # free widths with a common factor to divide
    before = wide.signature()
    out = nasir.transform(wide, ["split:S=2"])
    assert wide.signature() == before
    assert members(out) == ["net0", "net1"]
    assert out.node(out.output).shape == ir.node(ir.output).shape
    assert_static_matches_torch(out)
    assert count_costs(out).scopes["net0"].params < count_costs(wide).total.params


@PROPERTY
@given(irs())
def test_a_4x_wide_network_divided_by_4_has_2x_wide_members(ir: IR) -> None:
    out = nasir.transform(scale_widths(ir, 4, 1), ["split:S=4,align=1"])
    assert without_prefix(out, "net3") == [(n.id, n.op, n.attrs, n.inputs, n.shape)
                                          for n in scale_widths(ir, 2, 1).nodes()
                                          if n.op != "input"]


def test_widths_without_a_common_factor_are_refused() -> None:
    ir = nasir.load("network n() {\n input x: 3x8x8\n return x >> conv(5, 3) >> conv(7, 3) "
                    ">> gap >> flatten >> linear(2)\n}\n", text=True)
    with pytest.raises(SpecError, match="GCD 1, too small to divide by sqrt"):
        nasir.transform(ir, ["split:S=2"])


def test_rounding_follows_the_nearest_multiple_of_align() -> None:
    ir = nasir.transform(nasir.load("resnet110"), ["split:S=2,align=1"])
    assert ir.node("net0/conv1").attrs.out == round(16 / math.sqrt(2))


def test_stats_compares_the_members_with_the_original(capsys) -> None:
    from nasir.cli import main

    assert main(["stats", "resnet110", "--pass", "split:S=2", "--json"]) == 0
    data = assert_finite_json(capsys.readouterr().out)
    against = data["against_original"]
    original = count_costs(nasir.load("resnet110")).total
    assert against["original"] == {"params": original.params, "macs": original.macs}
    assert list(against["members"]) == ["net0", "net1"]
    net0 = against["members"]["net0"]
    assert net0["params"] == data["scopes"]["net0"]["params"]
    assert net0["params_ratio"] == round(net0["params"] / original.params, 4)
    assert main(["stats", "resnet110", "--pass", "split:S=2", "--depth", "0"]) == 0
    text = capsys.readouterr().out
    assert "against the network before --pass split:S=2:" in text
    assert f"{original.params:,} params" in text and "net1" in text
