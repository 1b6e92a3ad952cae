"""Filter grafting: entropy, alpha, the graft itself and the invalid-filter count."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasir.train.graft import (
    graft,
    graft_alpha,
    invalid_filters,
    weight_entropy,
)


def test_entropy_of_known_histograms() -> None:
    two_bins = torch.tensor([0.0, 0.0, 1.0, 1.0])  # half in the first bin, half in the last
    assert weight_entropy(two_bins) == pytest.approx(math.log(2))
    spread = torch.arange(10.0)  # one value per bin
    assert weight_entropy(spread) == pytest.approx(math.log(10))
    assert weight_entropy(torch.ones(5)) == 0.0


def test_alpha_on_known_entropies() -> None:
    assert graft_alpha(1.0, 1.0) == 0.5
    assert graft_alpha(2.0, 1.0) == pytest.approx(0.4 / math.pi * math.atan(500.0) + 0.5)
    assert graft_alpha(1.0, 1.001) == pytest.approx(0.4 / math.pi * math.atan(-0.5) + 0.5)
    assert 0.3 < graft_alpha(0.0, 10.0) < graft_alpha(10.0, 0.0) < 0.7


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16))
def test_grafting_a_network_with_itself_changes_nothing(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    state = {"conv.weight": torch.randn(4, 3, 3, 3, generator=gen),
             "bn.weight": torch.randn(4, generator=gen)}
    grafted = graft(state, state)
    assert all(torch.allclose(grafted[k], state[k]) for k in state)


def test_equal_entropies_blend_half_and_half() -> None:
    a = torch.arange(12.0).view(3, 4)
    b = -torch.arange(12.0).view(3, 4)  # the same histogram, mirrored
    out = graft({"fc.weight": a, "fc.bias": torch.ones(3)},
                {"fc.weight": b, "fc.bias": torch.zeros(3)})
    torch.testing.assert_close(out["fc.weight"], (a + b) / 2)
    torch.testing.assert_close(out["fc.bias"], torch.ones(3))  # 1-d tensors are kept


def test_the_richer_layer_keeps_more_of_itself() -> None:
    rich = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    poor = torch.zeros(8, 8)
    poor[0, 0] = 1.0
    out = graft({"w": rich}, {"w": poor})["w"]
    alpha = graft_alpha(weight_entropy(rich), weight_entropy(poor))
    assert alpha > 0.6
    torch.testing.assert_close(out, alpha * rich + (1 - alpha) * poor)


def test_invalid_filters_are_those_with_a_small_l1_norm() -> None:
    w = torch.ones(4, 2, 3, 3)
    w[1] = 0.0
    w[3] = 1e-4
    (row,) = invalid_filters({"conv.weight": w, "fc.weight": torch.zeros(3, 4)})
    assert (row.layer, row.filters, row.invalid) == ("conv.weight", 4, 2)


def test_cli_filters_reports_a_checkpoint_and_refuses_a_missing_one(tmp_path, capsys) -> None:
    from nasir.cli import main

    w = torch.ones(4, 2, 3, 3)
    w[2] = 0.0
    torch.save({"model": {"stem.weight": w, "fc.weight": torch.ones(3, 4)}},
               tmp_path / "checkpoint.pt")
    assert main(["filters", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["filters"], report["invalid"]) == (4, 1)
    assert main(["filters", str(tmp_path / "missing.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
