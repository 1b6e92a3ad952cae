"""The `condense` pass and CondenseNet's deployed ops and layers (Huang et al., CVPR 2018;
official ShichenLiu/CondenseNet layers.py `CondenseConv`, `CondenseLinear`, `ShuffleLayer`,
utils.py `convert_model`): the fixture, CondenseNet-86 and -74 counts, the CLI, the compiled
module, the layers against a transcription of the official ones, and laws over random
CondenseNet-like networks."""

from __future__ import annotations

import importlib
import json
from collections import Counter

import pytest
import torch
from conftest import assert_refused, load_pass_fixture, op_counts, run_real_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import nasir
from nasir.cli import main
from nasir.errors import SpecError
from nasir.ir.graph import IR
from nasir.layers.condensed import CondensedConv, CondensedLinear
from nasir.layers.learned_group_conv import CondensedGroupConv, LearnedGroupConv
from nasir.passes.costs import CountingPolicy, count_costs
from nasir.testing.checks import assert_static_matches_torch

PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOTALS = ("params", "macs", "muls", "adds", "other", "flops", "activations")


def condense(ir: IR) -> IR:
    return nasir.transform(ir, ["condense"])


# ---- the fixture --------------------------------------------------------------------------


def test_fixture_becomes_the_hand_written_condensed_network() -> None:
    before = load_pass_fixture("condense_small.arch")
    out = condense(before)
    assert out.signature() == load_pass_fixture("condense_small.condensed.arch").signature()
    assert op_counts(out) - op_counts(before) == Counter(condensed_conv=2, condensed_linear=1)
    assert op_counts(before) - op_counts(out) == Counter(learned_group_conv=2,
                                                         condensing_linear=1)
    made = {n.id for n in out.nodes() if n.made_by == "condense"}
    assert made == {"layer_1/conv", "transition/conv", "classifier"}


def test_fixture_counts_one_cth_of_each_learned_group_conv() -> None:
    """layer_1/conv: 16 in, 16 out, C=4 -> 64 weights; transition/conv: 24 in, 24 out, G=2,
    C=4 -> 144 weights; classifier: int(24*0.5)*10 + 10 = 130."""
    report = count_costs(condense(load_pass_fixture("condense_small.arch")))
    assert [report.nodes[i].params for i in ("layer_1/conv", "transition/conv", "classifier")] \
        == [16 * 16 // 4, 24 * 24 // 4, 12 * 10 + 10]
    assert report.nodes["transition/conv"].macs == 24 * 24 // 4 * 8 * 8


def test_fixture_compiles_runs_and_torch_measures_the_static_counts() -> None:
    out = condense(load_pass_fixture("condense_small.arch"))
    measured = assert_static_matches_torch(out)
    assert measured.torch_params == count_costs(out).total.params
    model = nasir.compile(out).eval()
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    indexes = {k: v for k, v in model.state_dict().items() if k.endswith("index")}
    assert {k: v.numel() for k, v in indexes.items()} == {
        "layer_1.conv.index": 16, "transition.conv.index": 12, "classifier.index": 12}


def test_bad_condensed_op_attributes_are_clear_errors() -> None:
    def one(shape: str, call: str) -> IR:
        return nasir.load(f"network n() {{\n    input x: {shape}\n    return x >> {call}\n}}",
                          text=True)

    for shape, call, message in [
        ("8x4x4", "condensed_conv(8, 4, 6)", "groups=4 does not divide select=6"),
        ("8x4x4", "condensed_conv(6, 4, 8)", "groups=4 does not divide out=6"),
        ("8x4x4", "condensed_conv(8, 2, 18)", "select/groups=9 channels, more than the 8"),
        ("8", "condensed_conv(8, 2, 4)", "expects a feature map CxHxW"),
        ("8", "condensed_linear(10, 9)", "select=9 is more than the 8 input features"),
        ("8x2x2", "condensed_linear(10, 4)", "add `>> flatten` before it"),
    ]:
        with pytest.raises(SpecError) as info:
            one(shape, call)
        assert message in info.value.message, call


def test_an_unknown_option_is_a_clear_error() -> None:
    with pytest.raises(SpecError, match="pass 'condense'"):
        nasir.transform(load_pass_fixture("condense_small.arch"), ["condense:keep=2"])


# ---- CondenseNet-86 and -74 ---------------------------------------------------------------


def test_condensenet86_condensed_is_516202_params_and_matches_the_compiled_module() -> None:
    """papers.md §5: the converted CondenseNet-86 has 516,202 parameters; its measure_model
    ops (65,812,394) are pinned in test_golden_condensenet.py on this same condensed IR."""
    ir = nasir.load("condensenet86")
    out = condense(ir)
    assert [(n.id, n.shape) for n in out.nodes()] == [(n.id, n.shape) for n in ir.nodes()]
    assert not {"learned_group_conv", "condensing_linear"} & set(op_counts(out))
    measured = assert_static_matches_torch(out)  # FlopCounterMode sees the group convs
    assert measured.static_params == measured.torch_params == 516_202
    # every learned group conv (G = C = 4) keeps exactly a quarter of its training weights
    training, deployed = count_costs(ir), count_costs(out)
    for node in ir.nodes():
        if node.op == "learned_group_conv":
            assert deployed.nodes[node.id].params * 4 == training.nodes[node.id].params


@pytest.mark.parametrize(("network", "c", "calc_m"),
                         [("condensenet74_c4", 4, 4.7739), ("condensenet74_c8", 8, 2.9354)])
def test_imagenet_condensenet74_condensed_params(network: str, c: int, calc_m: float) -> None:
    """papers.md §5 [calc] converted params (4 dp, as test_golden_condensenet.py); the deployed
    counts equal the training counts with each learned 1x1 conv cut to 1/C and the classifier
    to half of its inputs."""
    ir = nasir.load(network)
    out = condense(ir)
    params = count_costs(out).total.params
    assert round(params / 1e6, 4) == calc_m
    training = count_costs(ir)
    cut = sum(t.params - t.params // c for i, t in training.nodes.items()
              if ir.node(i).op == "learned_group_conv")
    (cls,) = [n for n in ir.nodes() if n.op == "condensing_linear"]
    features = ir.node(cls.inputs[0]).shape[0]
    assert params == training.total.params - cut - (features - features // 2) * 1000


def test_count_condensed_is_the_condensed_ir_counted_plainly() -> None:
    ir = nasir.load("condensenet74_c8")
    via_policy = count_costs(ir, CountingPolicy(condensed=True, act=True))
    plain = count_costs(condense(ir), CountingPolicy(act=True))
    assert via_policy.total == plain.total
    assert via_policy.nodes == plain.nodes and via_policy.scopes == plain.scopes


# ---- the CLI ------------------------------------------------------------------------------


def _stats(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["stats", "condensenet86", "--json", "--per-layer", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_count_condensed_equals_pass_condense_counted_plainly(
        capsys: pytest.CaptureFixture[str]) -> None:
    policy = _stats(capsys, "--count", "condensed,act,pool")
    passed = _stats(capsys, "--pass", "condense", "--count", "act,pool")
    assert policy["params"] == 516_202
    assert {k: policy[k] for k in TOTALS} == {k: passed[k] for k in TOTALS}
    assert policy["scopes"] == passed["scopes"]
    assert policy["layers"] == passed["layers"]  # the rows name the condensed ops
    assert policy["policy"]["condensed"] and "condense pass" in policy["policy"]["description"]
    ops = {row["op"] for row in policy["layers"]}
    assert {"condensed_conv", "condensed_linear"} <= ops
    assert not {"learned_group_conv", "condensing_linear"} & ops


def test_real_cli_transform_writes_arch_that_reloads_to_the_condensed_ir(tmp_path) -> None:
    target = tmp_path / "c86.arch"
    done = run_real_cli("transform", "condensenet86", "--pass", "condense", "-o", str(target))
    assert done.returncode == 0, done.stderr
    reloaded = nasir.load(str(target))
    assert reloaded.signature() == condense(nasir.load("condensenet86")).signature()
    stats = run_real_cli("stats", "condensenet86", "--count", "condensed", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["params"] == count_costs(reloaded).total.params == 516_202
    assert_refused(run_real_cli("stats", "condensenet86", "--pass", "condense:x=1"))


def test_cli_compile_writes_a_condensed_module_that_runs(tmp_path, monkeypatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "c86_deployed.py"
    assert main(["compile", "condensenet86", "--pass", "condense", "-o", str(target)]) == 0
    capsys.readouterr()
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("c86_deployed").build().eval()
    assert sum(p.numel() for p in module.parameters()) == 516_202
    assert module(torch.randn(1, 3, 32, 32)).shape == (1, 10)


# ---- the layers against the official ones -------------------------------------------------


def official_shuffle(x: Tensor, groups: int) -> Tensor:
    """Official `ShuffleLayer`, transcribed."""
    batchsize, num_channels, height, width = x.size()
    x = x.view(batchsize, groups, num_channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, -1, height, width)


class OfficialCondenseConv(nn.Module):
    """Official `CondenseConv` (1x1), transcribed: index_select, BN, ReLU, group conv, shuffle."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)
        self.register_buffer("index", torch.zeros(in_channels, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        x = torch.index_select(x, 1, self.index)
        x = self.relu(self.norm(x))
        return official_shuffle(self.conv(x), self.groups)


class OfficialCondenseLinear(nn.Module):
    """Official `CondenseLinear`, transcribed."""

    def __init__(self, in_features: int, out_features: int, drop_rate: float = 0.5) -> None:
        super().__init__()
        self.in_features = int(in_features * drop_rate)
        self.linear = nn.Linear(self.in_features, out_features)
        self.register_buffer("index", torch.zeros(self.in_features, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(torch.index_select(x, 1, self.index))


def random_index(in_channels: int, groups: int, per_group: int, gen: torch.Generator) -> Tensor:
    """Each group's `per_group` distinct channels, increasing, one group after another."""
    return torch.cat([torch.randperm(in_channels, generator=gen)[:per_group].sort().values
                      for _ in range(groups)])


@given(st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4]), st.integers(1, 4),
       st.integers(1, 3), st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_condensed_conv_after_bn_relu_is_the_official_condense_conv(
        groups: int, condense_factor: int, width: int, d_out: int, seed: int) -> None:
    """Official CondenseConv(x) == CondensedConv(ReLU(BN(x))) when the official BN at each
    selected position holds the statistics of the channel it selects (as `convert_model`
    copies them), for any G and C, weights, index and statistics."""
    gen = torch.Generator().manual_seed(seed)
    in_channels = groups * condense_factor * width
    per_group = in_channels // condense_factor
    select, out = per_group * groups, d_out * groups
    index = random_index(in_channels, groups, per_group, gen)
    bn = nn.BatchNorm2d(in_channels).eval()
    with torch.no_grad():
        for t in (bn.weight, bn.running_mean):
            t.copy_(torch.randn(in_channels, generator=gen))
        bn.bias.copy_(torch.rand(in_channels, generator=gen) + 1.0)  # most values pass ReLU
        bn.running_var.copy_(torch.rand(in_channels, generator=gen) + 0.5)
    official = OfficialCondenseConv(select, out, groups).eval()
    ours = CondensedConv(in_channels, out, groups, select).eval()
    with torch.no_grad():
        official.index.copy_(index)
        ours.index.copy_(index)
        official.conv.weight.copy_(torch.randn(official.conv.weight.shape, generator=gen))
        ours.conv.weight.copy_(official.conv.weight)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(official.norm, name).copy_(getattr(bn, name)[index])
    x = torch.randn(2, in_channels, 3, 3, generator=gen)
    with torch.no_grad():
        expected, got = official(x), ours(torch.relu(bn(x)))
        torch.testing.assert_close(got, expected)
        if groups > 1 and d_out > 1:  # without the shuffle the output order would differ
            unshuffled = ours.conv(torch.relu(bn(x)).index_select(1, ours.index))
            assert not torch.allclose(unshuffled, expected)


def test_condensed_linear_is_the_official_condense_linear() -> None:
    gen = torch.Generator().manual_seed(1)
    official, ours = OfficialCondenseLinear(20, 7), CondensedLinear(20, 7, 10)
    index = torch.randperm(20, generator=gen)[:10]
    with torch.no_grad():
        official.index.copy_(index)
        official.linear.weight.copy_(torch.randn(7, 10, generator=gen))
        official.linear.bias.copy_(torch.randn(7, generator=gen))
    ours.load_state_dict(official.state_dict())  # same keys: index, linear.weight/.bias
    x = torch.randn(3, 20, generator=gen)
    torch.testing.assert_close(ours(x), official(x))
    assert not torch.allclose(CondensedLinear(20, 7, 10)(x), official(x))


def test_condensed_conv_with_a_converted_learned_group_conv_computes_the_training_layer() -> None:
    """A fully condensed LearnedGroupConv, converted by its own `condense()` (the official
    CondensingConv order), loads into CondensedConv and computes the same function."""
    torch.manual_seed(0)
    learned = LearnedGroupConv(16, 12, groups=4, condense_factor=4)
    learned.update_progress(1.0)
    index, weight = learned.condense()
    ours = CondensedConv(16, 12, 4, 16)
    ours.load_state_dict({"index": index, "conv.weight": weight})
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(ours(x), learned(x))
    torch.testing.assert_close(ours(x), CondensedGroupConv.from_learned(learned)(x))


def test_fresh_layers_select_the_first_channels_and_move_with_to() -> None:
    layer = CondensedConv(4, 8, 4, 8)  # G=4 > C=2: groups together read 8 of 4 channels
    assert layer.index.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert layer.index.dtype == torch.long
    half = layer.to(torch.float64)
    assert half.index.dtype == torch.long and half.conv.weight.dtype == torch.float64
    assert "index" in dict(layer.named_buffers())
    with pytest.raises(ValueError, match="groups"):
        CondensedConv(4, 8, 3, 8)
    with pytest.raises(ValueError, match="exceeds"):
        CondensedLinear(4, 2, 5)
    with torch.device("meta"):
        meta = CondensedConv(8, 8, 2, 4)
    assert meta(torch.empty(1, 8, 3, 3, device="meta")).shape == (1, 8, 3, 3)


def test_layers_compile_without_graph_breaks() -> None:
    conv, linear = CondensedConv(8, 8, 2, 4).eval(), CondensedLinear(8, 3, 4).eval()
    x = torch.randn(2, 8, 3, 3)
    for layer, inp in ((conv, x), (linear, x.flatten(1)[:, :8])):
        compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
        torch.testing.assert_close(compiled(inp), layer(inp))


# ---- laws over random CondenseNet-like networks -------------------------------------------


@st.composite
def condensenet_like(draw: st.DrawFn) -> str:
    """Spec text: a stem, 1-3 dense layers (BN-ReLU-learned group conv, BN-ReLU-3x3 conv,
    concat), maybe a learned-group transition, and a condensing classifier."""
    groups = draw(st.sampled_from([1, 2, 4]))
    factor = draw(st.sampled_from([1, 2, 4]))
    stem = 4 * draw(st.integers(1, 3))
    lines = ["network r() {", "    input x: 3x6x6", f"    y = x >> conv({stem}, 3) as stem"]
    for i in range(draw(st.integers(1, 3))):
        growth = 4 * draw(st.integers(1, 2))
        lines += [f"    scope layer_{i} {{",
                  f"        z = y >> bn as norm >> relu as relu >> learned_group_conv("
                  f"{groups * draw(st.integers(1, 4))}, {groups}, {factor}) as conv",
                  f"        z = z >> bn as norm_2 >> relu >> conv({growth}, 3) as conv_2",
                  "    }", "    y = concat(y, z)"]
    if draw(st.booleans()):
        lines.append(f"    y = y >> learned_group_conv({4 * groups}, {groups}, {factor}) as "
                     "transition >> avgpool(2)")
    keep = draw(st.sampled_from([0.25, 0.5, 0.75, 1.0]))
    lines += [f"    return y >> gap >> flatten >> condensing_linear(5, keep={keep}) as fc", "}"]
    return 'import "std.arch"\n' + "\n".join(lines) + "\n"


@PROPERTY
@given(condensenet_like())
def test_condense_is_pure_valid_exact_idempotent_and_counted_by_torch(text: str) -> None:
    ir = nasir.load(text, text=True)
    before = ir.signature()
    out = condense(ir)
    assert ir.signature() == before  # the input is not mutated
    out.verify()
    assert condense(out).signature() == out.signature()  # idempotent
    assert [(n.id, n.shape) for n in out.nodes()] == [(n.id, n.shape) for n in ir.nodes()]
    training, deployed = count_costs(ir), count_costs(out)
    for node in ir.nodes():
        new = out.node(node.id)
        inputs = ir.node(node.inputs[0]).shape[0] if node.inputs else 0
        if node.op == "learned_group_conv":
            c = node.attrs.factor
            assert (new.op, new.made_by) == ("condensed_conv", "condense")
            assert deployed.nodes[node.id].params * c == training.nodes[node.id].params
        elif node.op == "condensing_linear":
            assert (new.op, new.made_by) == ("condensed_linear", "condense")
            kept = int(inputs * node.attrs.keep)
            assert deployed.nodes[node.id].params == kept * 5 + 5
        else:
            assert (new.op, new.attrs, new.made_by) == (node.op, node.attrs, node.made_by)
    assert count_costs(ir, CountingPolicy(condensed=True)).total == deployed.total
    assert_static_matches_torch(out)
