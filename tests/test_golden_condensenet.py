"""CondenseNet (Huang et al., CVPR 2018): the official models, counted as the official repo does.

Figures come from /work/shared/reference/papers.md §5: the README table ([repo-table], params in
M to 2 decimals, FLOPs in M) and the [calc] replication of the repo's `measure_model` on the
converted nets (exact for CondenseNet-86, 4 significant decimals for the others).
"""

from __future__ import annotations

import pytest

import nasir
from nasir.ir.graph import IR
from nasir.passes.costs import CountingPolicy, Totals, count_costs
from nasir.testing.checks import assert_static_matches_torch

MEASURE_MODEL = CountingPolicy(act=True, pool=True)
CLASSIFIERS = ("linear", "condensing_linear", "condensed_linear")


def condensed(network: str, **params: object) -> IR:
    """The converted network (`utils.convert_model`): the spec after the `condense` pass."""
    return nasir.transform(nasir.load(network, **params), ["condense"])


def condensed_totals(network: str, **params: object) -> Totals:
    """Totals of the converted network, dense layers only."""
    return count_costs(condensed(network, **params)).total


def measure_model_ops(ir: IR) -> int:
    """The official `utils.measure_model` ops of the converted network `ir` (the condense
    pass's output), from nasir's counts.

    measure_model counts, at batch 1: one op per conv/linear MAC (a learned group conv's MACs
    divided by C), one per ReLU input element, k*k per k x k average-pool output, one per
    linear bias element, and nothing for BN. Under `MEASURE_MODEL` nasir counts the same ReLU
    (1 comparison) and pooling (k*k-1 adds + 1 mul) ops, but a MAC as 1 mul + 1 add and a bias
    as the accumulator's initial value (no op). So: nasir MACs + the flops of every node
    without MACs + one per classifier bias element.
    """
    report = count_costs(ir, MEASURE_MODEL)
    non_dense = sum(t.flops for t in report.nodes.values() if t.macs == 0)
    biases = sum(n.shape[0] for n in ir.nodes() if n.op in CLASSIFIERS and n.attrs.bias)
    return report.total.macs + non_dense + biases


def classifier_shape(ir: IR) -> tuple[int, int]:
    """(inputs, classes) of the classifier; its inputs are every feature of the last block,
    since transitions only pool."""
    (node,) = [n for n in ir.nodes() if n.op in CLASSIFIERS]
    return ir.node(node.inputs[0]).shape[0], node.shape[0]


def test_condensenet86_converted_has_exactly_516202_params():
    """papers.md §5 [calc], confirmed on the official code: 516,202 params after conversion."""
    assert condensed_totals("condensenet86").params == 516_202


def test_condensenet86_with_unhalved_classifier_is_the_readme_0_52M():
    """README CIFAR params count the full classifier: +nf/2 * classes = +400 * 10 = +4,000."""
    params = condensed_totals("condensenet86", classifier_keep=1.0).params
    assert params == 516_202 + 4_000
    assert abs(params - 0.52e6) / 0.52e6 < 0.01


def test_condensenet86_measure_model_ops_are_exactly_65812394():
    """README "65.8M FLOPs" = measure_model on the converted net: 65,812,394 (papers.md §5)."""
    assert measure_model_ops(condensed("condensenet86")) == 65_812_394


def test_condensenet86_relu_and_pool_ops_follow_the_architecture():
    """The non-MAC part of measure_model, derived by hand: each dense layer applies ReLU to its
    c_in inputs and its 4k bottleneck maps; a 2x2 transition costs 4 ops per output, the final
    8x8 pool 64 per channel."""
    relu = pool = 0
    channels = 16
    for stage, (size, growth) in enumerate(zip((32, 16, 8), (8, 16, 32), strict=True)):
        for _ in range(14):
            relu += (channels + 4 * growth) * size * size
            channels += growth
        pool += channels * (size // 2) ** 2 * 4 if stage < 2 else channels * 64
    relu += channels * size * size  # relu_last
    report = count_costs(condensed("condensenet86"), MEASURE_MODEL).total
    assert report.other == relu  # ReLU: one comparison per element
    assert report.flops - 2 * report.macs == relu + pool


def test_condensenet86_training_form_matches_the_compiled_module():
    """Uncondensed, every learned group conv is a dense 1x1 conv, as torch measures it."""
    measured = assert_static_matches_torch(nasir.load("condensenet86"))
    assert measured.static_params == 1_451_594


def test_fully_dense_connectivity_feeds_every_feature_to_the_classifier():
    """FDC: transitions pool only, so CondenseNet-86 ends with 16 + 14*(8+16+32) = 800
    channels and ImageNet CondenseNet-74 with 16 + 8*4 + 16*6 + 32*8 + 64*10 + 128*8 = 2064."""
    cifar, imagenet = nasir.load("condensenet86"), nasir.load("condensenet74_c4")
    assert classifier_shape(cifar) == (800, 10)
    assert classifier_shape(imagenet) == (2064, 1000)
    report = count_costs(condensed("condensenet86"))
    assert all(report.scopes[f"features/transition_{i}"].params == 0 for i in (1, 2))


README_TABLE = [
    # network, README params (M, 2 dp; CIFAR with the full classifier), README FLOPs (M),
    # [calc] converted params (M, 4 dp), [calc] measure_model FLOPs (M, 2 dp)
    ("condensenet50", 0.22, 28.6, 0.2142, 28.64),
    ("condensenet74_cifar", 0.41, 51.9, 0.4020, 51.89),
    ("condensenet86", 0.52, 65.8, 0.5162, 65.81),
    ("condensenet98", 0.65, 81.3, 0.6439, 81.26),
    ("condensenet110", 0.79, 98.2, 0.7851, 98.23),
    ("condensenet122", 0.95, 116.7, 0.9398, 116.74),
    ("condensenet182", 4.2, 513, 4.2092, 512.66),
    ("condensenet74_c4", 4.8, 529, 4.7739, 529.33),
    ("condensenet74_c8", 2.9, 274, 2.9354, 274.23),
]


@pytest.mark.parametrize(("network", "readme_m", "readme_flops_m", "calc_m", "calc_flops_m"),
                         README_TABLE)
def test_readme_table_params_and_flops_round_to_the_published_figures(
    network: str, readme_m: float, readme_flops_m: float, calc_m: float, calc_flops_m: float
) -> None:
    """README table (CIFAR-10 and ImageNet): each count rounds to the published figure.

    Rounding, not a 1% band: 2.9M has two significant digits, and the exact 2.9354M is 1.2%
    above it. The README's CIFAR params count the un-halved classifier, ImageNet's the halved.
    """
    ir = condensed(network)
    imagenet = ir.node(ir.inputs[0]).shape[1] == 224
    converted = count_costs(ir).total.params
    readme_params = converted if imagenet else condensed_totals(network, classifier_keep=1.0).params
    ops = measure_model_ops(ir)
    assert round(converted / 1e6, 4) == calc_m
    assert round(ops / 1e6, 2) == calc_flops_m
    assert round(readme_params / 1e6, 2 if readme_m < 1 else 1) == readme_m
    flops_digits = 1 if readme_flops_m < 200 else 0
    assert round(ops / 1e6, flops_digits) == readme_flops_m
    assert abs(ops - readme_flops_m * 1e6) / (readme_flops_m * 1e6) < 0.01


@pytest.mark.parametrize(("network", "readme_m", "readme_flops_m"),
                         [("condensenet182", 4.2, 513), ("condensenet74_c4", 4.8, 529)])
def test_condensenet182_and_imagenet_c4_are_within_1_percent_of_the_readme(
    network: str, readme_m: float, readme_flops_m: float
) -> None:
    """README: CondenseNet-182* 4.2M / 513M (CIFAR-10); ImageNet G=C=4 4.8M / 529M."""
    ir = condensed(network)
    params = count_costs(ir).total.params
    assert abs(params - readme_m * 1e6) / (readme_m * 1e6) < 0.01
    assert abs(measure_model_ops(ir) - readme_flops_m * 1e6) / (readme_flops_m * 1e6) < 0.01


@pytest.mark.parametrize("network", ["condensenet86", "condensenet182", "condensenet74_c8"])
def test_the_unhalved_classifier_adds_half_its_inputs_times_classes(network: str) -> None:
    """papers.md §5: the full classifier adds nf/2 * classes params over the converted one."""
    features, classes = classifier_shape(nasir.load(network))
    extra = condensed_totals(network, classifier_keep=1.0).params - condensed_totals(network).params
    assert extra == features // 2 * classes


def test_imagenet_g8_condenses_each_1x1_conv_to_an_eighth():
    """G=C=8 keeps in/8 inputs per filter of every learned group conv (papers.md §5)."""
    ir = nasir.load("condensenet74_c8")
    training, deployed = count_costs(ir), count_costs(condensed("condensenet74_c8"))
    for node in ir.nodes():
        if node.op == "learned_group_conv":
            assert deployed.nodes[node.id].params * 8 == training.nodes[node.id].params
            assert deployed.nodes[node.id].macs * 8 == training.nodes[node.id].macs
