"""LearnedGroupConv and its condensed form (CondenseNet, Huang et al., CVPR 2018).

The reference behaviour is the official `ShichenLiu/CondenseNet` `layers.py`: `_check_drop`'s
stage schedule, `_dropping`'s L1 importance over interleaved groups, `lasso_loss`, and
`CondensingConv` (index_select -> grouped conv -> ShuffleLayer).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from nasir.layers.learned_group_conv import (
    ChannelShuffle,
    CondensedGroupConv,
    IndexSelect,
    LearnedGroupConv,
    condensing_stage,
)


def _run_schedule(layer: LearnedGroupConv, steps: int = 40) -> None:
    """Drive the condensing schedule from progress 0 to 1 as a training loop would."""
    for step in range(steps + 1):
        layer.update_progress(step / steps)


def _make_layer(
    in_channels: int, out_channels: int, groups: int, condense_factor: int, seed: int = 0
) -> LearnedGroupConv:
    torch.manual_seed(seed)
    return LearnedGroupConv(in_channels, out_channels, groups, condense_factor)


def test_condensed_conv_equals_masked_conv_with_one_cth_of_the_weights() -> None:
    layer = _make_layer(16, 32, groups=4, condense_factor=4)
    _run_schedule(layer)
    condensed = CondensedGroupConv.from_learned(layer)
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(condensed(x), layer(x))
    dense_weights = layer.weight.numel()
    assert sum(p.numel() for p in condensed.parameters()) == dense_weights // 4


@settings(max_examples=40, deadline=None)
@given(
    groups=st.integers(1, 4),
    condense_factor=st.integers(1, 4),
    in_multiple=st.integers(1, 3),
    out_multiple=st.integers(1, 3),
    progress_steps=st.lists(st.floats(0.0, 1.0), max_size=6),
    seed=st.integers(0, 2**16),
)
def test_condensed_conv_equals_masked_conv_for_any_sizes_and_schedule(
    groups: int,
    condense_factor: int,
    in_multiple: int,
    out_multiple: int,
    progress_steps: list[float],
    seed: int,
) -> None:
    in_channels = math.lcm(groups, condense_factor) * in_multiple
    out_channels = groups * out_multiple
    layer = _make_layer(in_channels, out_channels, groups, condense_factor, seed)
    for progress in [*sorted(progress_steps), 1.0]:
        layer.update_progress(progress)
    assert layer.kept_columns().sum(1).tolist() == [in_channels // condense_factor] * groups
    condensed = CondensedGroupConv.from_learned(layer)
    x = torch.randn(2, in_channels, 3, 3)
    torch.testing.assert_close(condensed(x), layer(x))


def test_condensed_index_lists_each_groups_columns_in_increasing_order() -> None:
    layer = _make_layer(12, 6, groups=3, condense_factor=3)
    _run_schedule(layer)
    index, weight = layer.condense()
    per_group = index.view(3, 4)
    for g in range(3):
        expected = torch.nonzero(layer.mask[g, :, 0, 0]).flatten()
        assert per_group[g].tolist() == expected.tolist()
        assert torch.all(layer.mask[g::3, expected] == 1)
    assert weight.shape == (6, 4, 1, 1)


def test_condensed_weight_takes_old_filter_g_plus_k_groups() -> None:
    # Official CondensingConv: new output k + g*(out/G) takes old filter g + k*G.
    groups, out_channels = 2, 6
    layer = _make_layer(4, out_channels, groups=groups, condense_factor=2)
    _run_schedule(layer)
    index, weight = layer.condense()
    columns = index.view(groups, -1)
    d_out = out_channels // groups
    for g in range(groups):
        for k in range(d_out):
            old = layer.weight[g + k * groups, columns[g], 0, 0]
            torch.testing.assert_close(weight[k + g * d_out, :, 0, 0], old)


def test_channel_shuffle_restores_filter_order_after_group_major_permutation() -> None:
    groups, d_out = 3, 4
    group_major = torch.tensor([g + k * groups for g in range(groups) for k in range(d_out)])
    x = group_major.float().view(1, -1, 1, 1)
    restored = ChannelShuffle(groups)(x).flatten()
    assert restored.tolist() == list(range(groups * d_out))


def test_index_select_picks_channels_in_index_order() -> None:
    x = torch.arange(5.0).view(1, 5, 1, 1)
    out = IndexSelect(torch.tensor([3, 0, 3]))(x)
    assert out.flatten().tolist() == [3.0, 0.0, 3.0]


def test_forward_is_a_conv_with_the_masked_weight_and_masked_grads_vanish() -> None:
    layer = _make_layer(8, 4, groups=2, condense_factor=2)
    layer.update_progress(1.0)
    x = torch.randn(3, 8, 4, 4)
    expected = F.conv2d(x, layer.weight * layer.mask)
    torch.testing.assert_close(layer(x), expected)
    layer(x).sum().backward()
    assert torch.all(layer.weight.grad[layer.mask == 0] == 0)


def test_importance_is_the_l1_norm_of_each_interleaved_groups_masked_columns() -> None:
    layer = _make_layer(6, 6, groups=3, condense_factor=3)
    _run_schedule(layer, steps=4)
    weight = (layer.weight * layer.mask)[:, :, 0, 0]
    expected = torch.zeros(3, 6)
    for o in range(6):
        expected[o % 3] += weight[o].abs()
    torch.testing.assert_close(layer.importance(), expected)


def test_lasso_loss_matches_the_group_lasso_formula() -> None:
    layer = _make_layer(8, 8, groups=4, condense_factor=4)
    layer.update_progress(0.2)  # stage 1: some columns are already masked
    weight = (layer.weight * layer.mask)[:, :, 0, 0]
    expected = sum(
        torch.sqrt(torch.clamp(sum(weight[o, j] ** 2 for o in range(g, 8, 4)), min=1e-6))
        for g in range(4)
        for j in range(8)
    )
    torch.testing.assert_close(layer.lasso_loss(), expected)
    layer.lasso_loss().backward()
    assert layer.weight.grad is not None


def test_lasso_loss_is_zero_in_the_optimization_stage() -> None:
    layer = _make_layer(8, 8, groups=4, condense_factor=4)
    layer.update_progress(0.49)
    assert layer.lasso_loss().item() > 0
    layer.update_progress(0.5)
    assert layer.lasso_loss().item() == 0


def test_lasso_loss_stops_at_stage_groups_minus_one_as_the_official_code() -> None:
    # Official `lasso_loss` tests the stage against `groups - 1`, not `condense_factor - 1`;
    # the two agree in every published configuration (G = C).
    layer = _make_layer(8, 4, groups=2, condense_factor=4)
    assert layer.lasso_loss().item() > 0
    layer.update_progress(1 / 6)  # stage 1 = G - 1 while condensing goes on to stage 3
    assert layer.lasso_loss().item() == 0


@pytest.mark.parametrize("condense_factor", [2, 3, 4, 8])
def test_condense_factor_minus_one_equal_stages_fill_the_first_half_of_training(
    condense_factor: int,
) -> None:
    steps = 24 * 7 * 10
    stages = [condensing_stage(i / steps, condense_factor) for i in range(steps + 1)]
    half = steps // 2
    assert stages[0] == 0
    assert all(s == condense_factor - 1 for s in stages[half:])
    assert stages[half - 1] == condense_factor - 2
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(stages))
    # Each condensing stage lasts 1/(2(C-1)) of training.
    for stage in range(condense_factor - 1):
        assert stages.count(stage) == half // (condense_factor - 1)


def test_condensing_stage_matches_the_official_boundaries_for_c4() -> None:
    expected = {0.0: 0, 0.16: 0, 1 / 6: 1, 0.3: 1, 1 / 3: 2, 0.49: 2, 0.5: 3, 1.0: 3}
    assert {p: condensing_stage(p, 4) for p in expected} == expected


def test_each_stage_advance_drops_in_over_c_columns_per_group() -> None:
    layer = _make_layer(12, 6, groups=2, condense_factor=3)
    assert not layer.update_progress(0.0)
    assert layer.kept_columns().sum(1).tolist() == [12, 12]
    assert layer.update_progress(0.25)
    assert int(layer.stage) == 1
    assert layer.kept_columns().sum(1).tolist() == [8, 8]
    assert not layer.update_progress(0.3)
    assert layer.update_progress(0.5)
    assert int(layer.stage) == 2
    assert layer.kept_columns().sum(1).tolist() == [4, 4]
    assert not layer.update_progress(1.0)


def test_drops_the_lowest_importance_columns_of_each_group() -> None:
    layer = LearnedGroupConv(4, 2, groups=2, condense_factor=2)
    with torch.no_grad():
        layer.weight.copy_(
            torch.tensor([[4.0, -1.0, 3.0, 2.0], [1.0, 2.0, -3.0, 4.0]]).view(2, 4, 1, 1)
        )
    layer.update_progress(1.0)
    assert layer.kept_columns().tolist() == [[True, False, True, False], [False, False, True, True]]


def test_masked_columns_are_not_dropped_twice() -> None:
    # A kept column of exactly zero importance ties with the masked ones; the official sort
    # relies on `count` to step past the masked columns, here they are excluded outright.
    layer = _make_layer(8, 2, groups=1, condense_factor=4)
    layer.update_progress(1 / 6)
    kept = layer.kept_columns()[0]
    with torch.no_grad():
        layer.weight[:, kept.nonzero()[0]] = 0.0
    layer.update_progress(1 / 3)
    assert layer.kept_columns().sum().item() == 4
    layer.update_progress(1.0)
    assert layer.kept_columns().sum().item() == 2


def test_condense_before_the_schedule_finishes_raises() -> None:
    layer = _make_layer(8, 8, groups=2, condense_factor=4)
    layer.update_progress(0.3)
    with pytest.raises(ValueError, match="condensing has not finished"):
        CondensedGroupConv.from_learned(layer)


def test_empty_condensed_conv_loads_a_converted_state_dict() -> None:
    layer = _make_layer(8, 8, groups=4, condense_factor=2)
    _run_schedule(layer)
    converted = CondensedGroupConv.from_learned(layer)
    loaded = CondensedGroupConv(8, 8, groups=4, condense_factor=2)
    loaded.load_state_dict(converted.state_dict())
    x = torch.randn(1, 8, 2, 2)
    torch.testing.assert_close(loaded(x), layer(x))


def test_condense_factor_defaults_to_groups() -> None:
    assert LearnedGroupConv(8, 8, groups=4).condense_factor == 4


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "groups", "condense_factor", "message"),
    [
        (6, 8, 4, 2, r"in_channels \(6\) must be divisible by groups \(4\)"),
        (8, 8, 2, 3, r"in_channels \(8\) must be divisible by condense_factor \(3\)"),
        (8, 6, 4, 4, r"out_channels \(6\) must be divisible by groups \(4\)"),
        (8, 8, 0, 4, r"groups must be a positive integer"),
    ],
)
def test_bad_sizes_raise_value_error(
    in_channels: int, out_channels: int, groups: int, condense_factor: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LearnedGroupConv(in_channels, out_channels, groups, condense_factor)
    with pytest.raises(ValueError, match=message):
        CondensedGroupConv(in_channels, out_channels, groups, condense_factor)


def test_progress_outside_unit_interval_raises() -> None:
    with pytest.raises(ValueError, match="progress"):
        LearnedGroupConv(4, 4, groups=2).update_progress(1.5)


def test_model_level_helpers_drive_every_learned_group_conv() -> None:
    from nasir.layers.learned_group_conv import group_lasso, update_condensation

    model = torch.nn.Sequential(LearnedGroupConv(8, 8, 4), torch.nn.ReLU(),
                                LearnedGroupConv(8, 16, 4))
    expected = model[0].lasso_loss() + model[2].lasso_loss()
    assert torch.allclose(group_lasso(model), expected)
    assert update_condensation(model, 0.2) == 2  # first condensing stage reached by both
    assert all(layer.kept_columns().sum(1).eq(6).all() for layer in (model[0], model[2]))
    assert update_condensation(model, 0.2) == 0
    assert group_lasso(torch.nn.Linear(2, 2)).item() == 0.0
