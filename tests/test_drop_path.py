"""ScheduledDropPath (NASNet-A, Zoph et al., CVPR 2018), against TF-slim's v3 drop path:
keep = 1 - min(1, step/total_steps) * (cell+1)/total_cells * (1 - drop_path_keep_prob).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nasir.layers.drop_path import ScheduledDropPath, set_drop_path_progress


def test_eval_mode_is_identity() -> None:
    path = ScheduledDropPath(0.4).eval()
    path.set_progress(1.0)
    x = torch.randn(8, 3, 2, 2)
    assert path(x) is x


def test_zero_drop_prob_is_identity_in_training() -> None:
    x = torch.randn(8, 3, 2, 2)
    assert ScheduledDropPath(0.0).train()(x) is x


def test_nothing_is_dropped_at_the_start_of_training() -> None:
    path = ScheduledDropPath(0.4, cell_index=17, total_cells=18).train()
    x = torch.randn(64, 3, 2, 2)
    torch.testing.assert_close(path(x), x)


def test_drop_probability_follows_the_tf_slim_v3_schedule() -> None:
    drop_path_keep_prob, cell_num, total_num_cells, current_ratio = 0.6, 2, 18, 0.25
    path = ScheduledDropPath(1 - drop_path_keep_prob, cell_num, total_num_cells)
    path.set_progress(current_ratio)
    keep = 1 - (cell_num + 1) / total_num_cells * (1 - drop_path_keep_prob)
    keep = 1 - current_ratio * (1 - keep)
    assert path.drop_probability().item() == pytest.approx(1 - keep)


def test_set_progress_clamps_to_the_unit_interval() -> None:
    path = ScheduledDropPath(0.3)
    path.set_progress(2.5)
    assert path.progress.item() == 1.0
    path.set_progress(-1.0)
    assert path.progress.item() == 0.0


def test_expectation_is_preserved_and_the_drop_rate_matches() -> None:
    torch.manual_seed(0)
    path = ScheduledDropPath(0.4, cell_index=3, total_cells=4).train()
    path.set_progress(1.0)
    x = torch.ones(200_000, 1, 1, 1)
    out = path(x)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    assert (out == 0).float().mean().item() == pytest.approx(0.4, abs=0.01)


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 16),
    channels=st.integers(1, 4),
    drop_prob=st.floats(0.05, 0.9),
    progress=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_each_sample_is_dropped_or_scaled_as_a_whole(
    batch: int, channels: int, drop_prob: float, progress: float, seed: int
) -> None:
    torch.manual_seed(seed)
    path = ScheduledDropPath(drop_prob, cell_index=1, total_cells=2).train()
    path.set_progress(progress)
    x = torch.rand(batch, channels, 3, 3) + 0.5
    keep = 1 - path.drop_probability()
    out = path(x)
    for sample, source in zip(out, x, strict=True):
        dropped = torch.all(sample == 0)
        assert dropped or torch.allclose(sample, source / keep)


def test_set_drop_path_progress_reaches_every_nested_drop_path() -> None:
    model = nn.Sequential(
        ScheduledDropPath(0.3, 0, 3),
        nn.Sequential(nn.Identity(), ScheduledDropPath(0.3, 1, 3)),
        ScheduledDropPath(0.3, 2, 3),
    )
    assert set_drop_path_progress(model, 0.5) == 3
    paths = [m for m in model.modules() if isinstance(m, ScheduledDropPath)]
    assert [p.progress.item() for p in paths] == [0.5, 0.5, 0.5]
    assert set_drop_path_progress(nn.Linear(2, 2), 0.5) == 0


def test_compiles_in_one_graph_and_progress_changes_do_not_recompile() -> None:
    graphs: list[torch.fx.GraphModule] = []

    def counting_backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    path = ScheduledDropPath(0.4, cell_index=1, total_cells=2).train()
    compiled = torch.compile(path, backend=counting_backend, fullgraph=True)
    x = torch.randn(4, 2, 3, 3)
    for progress in (0.0, 0.5, 1.0):
        path.set_progress(progress)
        compiled(x)
    assert len(graphs) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1.0,), "drop_prob"),
        ((-0.1,), "drop_prob"),
        ((0.3, 2, 2), "cell_index"),
        ((0.3, 0, 0), "total_cells"),
    ],
)
def test_bad_arguments_raise_value_error(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScheduledDropPath(*args)
