"""`nasir train`: learning on digits, exact resumption, and checkpoints as hostile input."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import assert_refused, run_real_cli

import nasir
import nasir.train.loop as loop
from nasir.errors import SpecError
from nasir.train import TrainConfig, train
from nasir.train.data import load_data

pytest.importorskip("sklearn", reason="--data digits needs scikit-learn")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _ir(width: int = 8):
    return nasir.load("digits_cnn", width=width)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


class _Killed(Exception):
    pass


def _killed_after(epochs: int, run) -> None:
    """Run `run` and kill it (an exception at the end of an epoch) after `epochs` epochs."""
    original, calls = loop._progress_line, [0]

    def stop(*args):
        calls[0] += 1
        if calls[0] >= epochs:
            raise _Killed
        return original(*args)

    loop._progress_line = stop
    try:
        with pytest.raises(_Killed):
            run()
    finally:
        loop._progress_line = original


def test_a_small_cnn_learns_digits_well_above_chance(digits, tmp_path: Path) -> None:
    result = train(_ir(), digits, TrainConfig(epochs=4, out=tmp_path))
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert result.final["val_acc"] > 0.6  # chance is 0.1
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 4
    assert (tmp_path / "report.json").is_file()


def test_a_killed_and_resumed_run_ends_as_an_uninterrupted_one(digits, tmp_path: Path) -> None:
    config = TrainConfig(epochs=4, seed=5)
    whole = train(_ir(), digits, replace(config, out=tmp_path / "whole"))
    parts = tmp_path / "parts"
    _killed_after(2, lambda: train(_ir(), digits, replace(config, out=parts),
                                   progress=lambda line: None))
    assert torch.load(parts / "checkpoint.pt", weights_only=True)["epoch"] == 2
    resumed = train(_ir(), digits, replace(config, out=parts, resume=True))
    got, want = _weights(parts), _weights(tmp_path / "whole")
    assert all(torch.equal(got[k], want[k]) for k in want)

    def timeless(history):
        return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in history]
    assert timeless(resumed.history) == timeless(whole.history)


def test_a_truncated_checkpoint_is_refused_and_left_as_it_is(digits, tmp_path: Path) -> None:
    train(_ir(), digits, TrainConfig(epochs=1, out=tmp_path))
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:200])
    before = _files(tmp_path)
    with pytest.raises(SpecError, match="cannot read checkpoint"):
        train(_ir(), digits, TrainConfig(epochs=2, out=tmp_path, resume=True))
    assert _files(tmp_path) == before


def test_a_checkpoint_of_another_network_is_refused(digits, tmp_path: Path) -> None:
    train(_ir(width=8), digits, TrainConfig(epochs=1, out=tmp_path))
    with pytest.raises(SpecError, match="another structure"):
        train(_ir(width=4), digits, TrainConfig(epochs=2, out=tmp_path, resume=True))


def test_a_fresh_run_never_overwrites_an_earlier_one(digits, tmp_path: Path) -> None:
    train(_ir(), digits, TrainConfig(epochs=1, out=tmp_path))
    before = _files(tmp_path)
    with pytest.raises(SpecError, match="already holds a training run"):
        train(_ir(), digits, TrainConfig(epochs=1, out=tmp_path))
    assert _files(tmp_path) == before


def test_a_classifier_of_the_wrong_width_is_refused(digits, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="has 10 classes"):
        train(nasir.load("digits_cnn", classes=7), digits, TrainConfig(epochs=1, out=tmp_path))


def test_cli_trains_and_resumes_and_refuses_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run_real_cli("train", "digits_cnn", "--data", "digits", "--epochs", "1",
                         "--out", str(out), entry_point=True)
    assert first.returncode == 0, first.stderr
    assert "epoch 1/1" in first.stdout and "validation accuracy" in first.stdout
    again = run_real_cli("train", "digits_cnn", "--data", "digits", "--epochs", "2",
                         "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert_refused(run_real_cli("train", "digits_cnn", "--data", "mnist", "--epochs", "1",
                                "--out", str(tmp_path / "x")))
    # a symlink planted where the log goes is not followed
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.unlink(out / "log.jsonl")
    os.symlink(victim, out / "log.jsonl")
    planted = run_real_cli("train", "digits_cnn", "--data", "digits", "--epochs", "3",
                           "--out", str(out), "--resume")
    assert_refused(planted)
    assert victim.read_text() == "precious"


LEARNED_GROUPS = """
network lgc_digits() {
    input x: 1x8x8
    y = x >> conv(16, 3) as stem >> bn >> relu
    y = y >> learned_group_conv(16, 4, 4) as lgc1 >> bn >> relu
    y = y >> learned_group_conv(16, 4, 4) as lgc2 >> bn >> relu
    return y >> gap >> flatten >> linear(10) as fc
}
"""


def test_learned_group_convs_condense_on_schedule_and_still_learn(digits,
                                                                  tmp_path: Path) -> None:
    from nasir.layers.learned_group_conv import LearnedGroupConv

    ir = nasir.load(LEARNED_GROUPS, text=True)
    result = train(ir, digits, TrainConfig(epochs=6, out=tmp_path))
    assert any("CondenseNet" in line for line in result.methods)
    assert result.final["val_acc"] > 0.3  # chance is 0.1
    model = nasir.compile(ir)
    model.load_state_dict(_weights(tmp_path))
    layers = [m for m in model.modules() if isinstance(m, LearnedGroupConv)]
    assert len(layers) == 2
    for layer in layers:  # the last stage: every group reads in/C = 4 of the 16 channels
        assert int(layer.stage) == 3
        assert layer.kept_columns().sum(1).tolist() == [4, 4, 4, 4]


def test_methods_follow_what_the_module_holds() -> None:
    from torch import nn

    from nasir.layers.drop_path import ScheduledDropPath
    from nasir.layers.learned_group_conv import LearnedGroupConv, group_lasso
    from nasir.train.methods import Methods, progress_of

    plain = Methods.of(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()))
    assert (plain.describe(), plain.extra_loss()) == ([], None)
    path = ScheduledDropPath(0.4)
    lgc = LearnedGroupConv(8, 8, 2, 2)
    both = Methods.of(nn.Sequential(lgc, path), lasso=0.5)
    both.before_step(0.3)
    assert float(path.progress) == pytest.approx(0.3)  # the drop-path ramp
    assert int(lgc.stage) == 0  # C = 2: one condensing stage, over the first half
    both.before_step(0.6)
    assert int(lgc.stage) == 1
    torch.testing.assert_close(both.extra_loss(), 0.5 * group_lasso(lgc))
    assert progress_of(epoch=1, step=5, steps=10, epochs=4) == pytest.approx(15 / 40)


def test_an_adder_net_learns_digits(digits, tmp_path: Path) -> None:
    ir = nasir.transform(_ir(width=16), ["adder"])
    result = train(ir, digits, TrainConfig(epochs=4, out=tmp_path))
    assert any("AdderNet" in line for line in result.methods)
    assert result.final["val_acc"] > 0.6  # chance is 0.1


def test_cotraining_loss_on_known_logits() -> None:
    import math

    from nasir.train.methods import cot_weight, cotraining_loss

    z1, z2 = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    y = torch.tensor([0])
    p1, p2 = [0.5, 0.5], [0.75, 0.25]
    mean = [(a + b) / 2 for a, b in zip(p1, p2, strict=True)]

    def entropy(p: list[float]) -> float:
        return -sum(v * math.log(v) for v in p)
    ce = -math.log(0.5) - math.log(0.75)
    js = entropy(mean) - (entropy(p1) + entropy(p2)) / 2
    got = cotraining_loss([z1, z2], y, weight=0.5)
    assert float(got) == pytest.approx(ce + 0.5 * js, rel=1e-6)
    assert js > 0
    assert float(cotraining_loss([z1, z1], y, weight=0.5)) == pytest.approx(2 * math.log(2))
    assert [cot_weight(p) for p in (0.0, 0.125, 0.25, 0.9)] == pytest.approx(
        [0.0, 0.25, 0.5, 0.5])


def test_a_split_ensemble_co_trains_and_beats_each_member(digits, tmp_path: Path) -> None:
    ir = nasir.transform(_ir(width=16), [("split", {"S": 2})])
    result = train(ir, digits, TrainConfig(epochs=8, out=tmp_path))
    assert any("SplitNet" in line for line in result.methods)
    final = result.final
    assert len(final["val_member_acc"]) == 2
    assert final["val_acc"] > 0.8
    assert final["val_acc"] >= max(final["val_member_acc"])


def test_grafted_networks_take_from_their_ring_neighbour_and_learn(digits, tmp_path: Path,
                                                                   monkeypatch) -> None:
    calls: list[tuple[int, int]] = []
    real = loop.graft

    def spy(own, other):
        calls.append((own["conv1.weight"].data_ptr(), other["conv1.weight"].data_ptr()))
        return real(own, other)

    monkeypatch.setattr(loop, "graft", spy)
    made = []
    real_replica = loop._replica
    monkeypatch.setattr(loop, "_replica", lambda *a: made.append(real_replica(*a)) or made[-1])
    result = train(_ir(), digits, TrainConfig(epochs=2, out=tmp_path, graft=3))
    ptr = [r.model.get_parameter("conv1.weight").data_ptr() for r in made]
    assert calls == [(ptr[k], ptr[(k + 1) % 3]) for k in range(3)] * 2  # a ring, each epoch
    assert any("Filter Grafting" in line for line in result.methods)
    assert len(result.final["val_acc_each"]) == 3
    torch.testing.assert_close(_weights(tmp_path)["conv1.weight"],
                               made[0].model.get_parameter("conv1.weight").detach())


def test_a_grafted_run_resumes_exactly_and_refuses_another_k(digits, tmp_path: Path) -> None:
    config = TrainConfig(epochs=4, seed=1, graft=2)
    whole = train(_ir(width=16), digits, replace(config, out=tmp_path / "whole"))
    parts = tmp_path / "parts"
    _killed_after(1, lambda: train(_ir(width=16), digits, replace(config, out=parts),
                                   progress=lambda line: None))
    with pytest.raises(SpecError, match="trained 2 network"):
        train(_ir(width=16), digits, replace(config, out=parts, resume=True, graft=3))
    train(_ir(width=16), digits, replace(config, out=parts, resume=True))
    got = torch.load(parts / "checkpoint.pt", weights_only=True)["replicas"]
    want = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["replicas"]
    for a, b in zip(got, want, strict=True):
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert min(whole.final["val_acc_each"]) > 0.6  # both grafted networks learn


def test_condensed_trained_weights_compute_the_masked_models_function(digits,
                                                                      tmp_path: Path) -> None:
    from nasir.train.condense import condensed_weights, module_path

    spec = LEARNED_GROUPS.replace("linear(10) as fc", "condensing_linear(10, 0.5) as fc")
    ir = nasir.load(spec, text=True)
    train(ir, digits, TrainConfig(epochs=4, out=tmp_path))
    state = _weights(tmp_path)
    deployed, weights = condensed_weights(ir, state)
    masked, condensed = nasir.compile(ir).eval(), nasir.compile(deployed).eval()
    masked.load_state_dict(state)
    condensed.load_state_dict(weights)
    # the classifier keeps its 8 strongest of 16 features: drop the others from the masked
    fc = masked.get_submodule(module_path("fc"))
    kept = torch.zeros(16, dtype=torch.bool)
    kept[weights["fc.index"]] = True
    with torch.no_grad():
        fc.weight[:, ~kept] = 0.0
    x = digits.val.tensors[0][:64]
    with torch.no_grad():
        diff = (masked(x) - condensed(x)).abs().max()
    assert float(diff) <= 1e-5
    assert nasir.stats(deployed).total.params < nasir.stats(ir).total.params


def test_cli_condense_refuses_a_run_that_has_not_finished_condensing(tmp_path: Path) -> None:
    spec = tmp_path / "lgc.arch"
    spec.write_text(LEARNED_GROUPS)
    run = tmp_path / "run"
    first = run_real_cli("train", str(spec), "--data", "digits", "--epochs", "4", "--out",
                         str(run))
    assert first.returncode == 0, first.stderr
    ok = run_real_cli("condense", str(spec), "--checkpoint", str(run), "-o",
                      str(tmp_path / "deployed.pt"))
    assert ok.returncode == 0, ok.stderr
    assert "922 -> 538 parameters" in ok.stdout
    loaded = torch.load(tmp_path / "deployed.pt", weights_only=True)
    model = nasir.compile(nasir.transform(nasir.load(str(spec)), ["condense"]))
    model.load_state_dict(loaded)
    # a run stopped at 10% of a long schedule has not condensed: refused, nothing written
    early = tmp_path / "early"
    _killed_after(1, lambda: train(nasir.load(str(spec)), load_data("digits"),
                                   TrainConfig(epochs=20, out=early), progress=lambda line: None))
    refused = run_real_cli("condense", str(spec), "--checkpoint", str(early), "-o",
                           str(tmp_path / "no.pt"))
    assert_refused(refused)
    assert "cannot be condensed yet" in refused.stderr
    assert not (tmp_path / "no.pt").exists()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", 10**20, "MAX_EPOCHS"), ("epochs", 0, "MAX_EPOCHS"), ("graft", 10_000, "MAX_GRAFT"),
    ("lr", float("nan"), "finite"), ("batch", 0, "batch of 1")])
def test_a_configuration_that_cannot_run_is_refused_when_made(field: str, value,
                                                              message: str) -> None:
    with pytest.raises(SpecError, match=message):
        TrainConfig(**{"epochs": 1, field: value})
