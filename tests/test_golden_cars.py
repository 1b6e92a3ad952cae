"""Golden tests: DARTS-space networks with the published DARTS and CARS genotypes.

CARS (Yang et al., CVPR 2020, arXiv 1909.04977) Table 1 (CIFAR-10) and Table 2 (ImageNet), as
shipped in the huawei-noah/CARS README figures; DARTS (Liu et al., ICLR 2019) Table 1. All
counts exclude the auxiliary head, as DARTS's `utils.count_parameters_in_MB` does.

The tables give parameters rounded to 0.1M, so the primary check is that the exact count rounds
to the published figure. Two counts lie inside their rounding interval but more than 1% from
the rounded figure: CARS-A on CIFAR-10 (2,432,206 vs 2.4M, +1.3%) and DARTS-V2 (3,349,342 vs
3.3M, +1.5%). They are recorded as strict expected failures of the 1% criterion, not tuned.
"""

from __future__ import annotations

import pytest
import torch

import nasir
from nasir.errors import SpecError
from nasir.testing.checks import assert_static_matches_torch

CARS = "ABCDEFGHI"
# CARS Table 1 (CIFAR-10, C=36, 20 cells) and Table 2 (ImageNet mobile, C=48, 14 cells),
# parameters in units of 0.1M.
CIFAR10_PARAMS_TENTHS_M = dict(zip(CARS, [24, 27, 28, 29, 30, 31, 32, 33, 36], strict=True))
IMAGENET_PARAMS_TENTHS_M = dict(zip(CARS, [37, 40, 42, 43, 44, 45, 47, 48, 51], strict=True))


def params(name: str) -> int:
    return nasir.stats(nasir.load(name)).total.params


def tenths_of_a_million(count: int) -> int:
    """Round half up to 0.1M, the precision of the papers' tables."""
    return (count + 50_000) // 100_000


@pytest.mark.parametrize("letter", CARS)
def test_cars_table1_cifar10_params_round_to_the_published_figure(letter: str) -> None:
    count = params(f"cars_{letter.lower()}_cifar10")
    assert tenths_of_a_million(count) == CIFAR10_PARAMS_TENTHS_M[letter], f"{count:,}"


@pytest.mark.parametrize("letter", CARS)
def test_cars_table2_imagenet_params_round_to_the_published_figure(letter: str) -> None:
    count = params(f"cars_{letter.lower()}_imagenet")
    assert tenths_of_a_million(count) == IMAGENET_PARAMS_TENTHS_M[letter], f"{count:,}"


def test_cars_i_table1_cifar10_params_within_1pct_of_3_6m() -> None:
    assert params("cars_i_cifar10") == pytest.approx(3.6e6, rel=0.01)


@pytest.mark.xfail(strict=True, reason="2,432,206 rounds to 2.4M but is 1.34% above it")
def test_cars_a_table1_cifar10_params_within_1pct_of_2_4m() -> None:
    assert params("cars_a_cifar10") == pytest.approx(2.4e6, rel=0.01)


def test_darts_v2_table1_cifar10_params_round_to_3_3m() -> None:
    assert tenths_of_a_million(params("darts_v2_cifar10")) == 33


@pytest.mark.xfail(strict=True, reason="3,349,342 rounds to 3.3M but is 1.50% above it")
def test_darts_v2_table1_cifar10_params_within_1pct_of_3_3m() -> None:
    assert params("darts_v2_cifar10") == pytest.approx(3.3e6, rel=0.01)


@pytest.mark.parametrize("name", ["cars_a_cifar10", "cars_i_cifar10"])
def test_static_counts_match_the_compiled_torch_module(name: str) -> None:
    assert_static_matches_torch(nasir.load(name))


def test_reduction_cells_sit_at_one_and_two_thirds_of_the_depth() -> None:
    ir = nasir.load("darts_v2_cifar10")
    out = {i: ir.node(f"cell{i}/concat").shape for i in range(20)}
    assert out[5] == (4 * 36, 32, 32)
    assert out[6] == (4 * 72, 16, 16) and out[12] == (4 * 72, 16, 16)
    assert out[13] == (4 * 144, 8, 8) and out[19] == (4 * 144, 8, 8)
    # The cell after a reduction brings its older input down with a FactorizedReduce.
    kinds = ir.scope_kinds
    assert kinds["cell7/preprocess0"][1] == kinds["cell14/preprocess0"][1] == "factorized_reduce"
    assert kinds["cell8/preprocess0"][1] == "relu_conv_bn"


def test_reduction_cell_strides_only_the_edges_from_the_cell_inputs() -> None:
    ir = nasir.load("cars_i_cifar10")  # reduce: skip_connect from input 1, max_pool from node 2
    assert ir.scope_kinds["cell6/op1/factorized_reduce"][1] == "factorized_reduce"
    assert ir.node("cell6/op3/maxpool").attrs.stride == 1
    assert ir.node("cell6/op2/maxpool").attrs.stride == 2


def test_factorized_reduce_matches_darts_crop_of_the_second_path() -> None:
    ir = nasir.load("""
    import "darts.arch"
    network fr() {
        input x: 4x8x8
        return x >> factorized_reduce(6) as reduce
    }""", text=True, network="fr")
    model = nasir.compile(ir).eval()
    x = torch.randn(2, 4, 8, 8)
    r = model.reduce
    y = torch.relu(x)
    expected = r.bn(torch.cat([r.conv_1(y), r.conv_2(y[:, :, 1:, 1:])], dim=1))
    torch.testing.assert_close(model(x), expected)


def test_every_darts_primitive_compiles_and_counts_like_torch() -> None:
    everything = [["none", 0], ["max_pool_3x3", 1], ["avg_pool_3x3", 0], ["skip_connect", 1],
                  ["sep_conv_3x3", 2], ["sep_conv_5x5", 3], ["dil_conv_3x3", 4],
                  ["dil_conv_5x5", 0]]
    reduce = [*everything[:4], ["sep_conv_7x7", 0], *everything[5:]]
    genotype = [everything, [2, 3, 4, 5], reduce, [2, 3, 4, 5]]
    ir = nasir.load("darts_cifar", genotype=genotype, C=8, layers=5)
    assert_static_matches_torch(ir)
    assert nasir.compile(ir)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_an_unknown_primitive_name_is_a_spec_error() -> None:
    genotype = [[["conv_9x9", 0], ["skip_connect", 1]] * 4, [2, 3, 4, 5],
                [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4, [2, 3, 4, 5]]
    with pytest.raises(SpecError, match="unknown DARTS op 'conv_9x9'"):
        nasir.load("darts_cifar", genotype=genotype, C=8, layers=3)
