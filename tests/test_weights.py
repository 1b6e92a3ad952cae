"""nasir.load_weights and `nasir import-weights`: importing the original code's checkpoints.

The reference modules below are transcribed in the style of the original code (torchvision's
nn.Sequential indices; GhostNet-style names of the official module), so a checkpoint of theirs
is what `state_dict()` gives; the import is right when the nasir module then computes the same
function.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import nasir
from nasir.cli import main
from nasir.weights import load_checkpoint, match_weights

# torchvision style: features.0 conv, features.1 bn, features.2 relu, features.3 a nested block
NUMERIC_SPEC = """
network tiny(classes: int = 4) {
    input x: 3x8x8
    y = x
    scope features {
        y = y >> conv(8, 3, pad=1) as 0 >> bn as 1 >> relu
        scope 3 { y = y >> conv(8, 3, pad=1) as 0 >> bn as 1 >> relu }
    }
    return y >> gap >> flatten >> linear(classes) as classifier
}
"""

# the same network under nasir-style names of its own
NAMED_SPEC = """
network tiny(classes: int = 4) {
    input x: 3x8x8
    y = x >> conv(8, 3, pad=1) as stem_conv >> bn as stem_bn >> relu
    y = y >> conv(8, 3, pad=1) as block_conv >> bn as block_bn >> relu
    return y >> gap >> flatten >> linear(classes) as head
}
"""

TWO_LINEARS = """
network two() {
    input x: 4
    return x >> linear(4) as first >> relu >> linear(4) as second
}
"""


class TorchvisionStyle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          nn.ReLU()))
        self.classifier = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


class TwoLinears(nn.Module):
    """Declares its layers in the opposite order of their use."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Linear(4, 4)
        self.early = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.late(torch.relu(self.early(x)))


def _reference() -> TorchvisionStyle:
    torch.manual_seed(0)
    ref = TorchvisionStyle()
    for m in ref.modules():  # non-trivial batch-norm statistics, so buffers must be imported
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
            m.num_batches_tracked.fill_(7)
    return ref.eval()


def _build(spec: str) -> nn.Module:
    return nasir.compile(spec, text=True).eval()


def _same_function(a: nn.Module, b: nn.Module, shape=(2, 3, 8, 8)) -> bool:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-6)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _unchanged(module: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = module.state_dict()
    return before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in after)


# ---- the API ------------------------------------------------------------------------------

def test_numeric_labels_give_the_original_keys_and_map_by_name() -> None:
    ref, model = _reference(), _build(NUMERIC_SPEC)
    assert list(model.state_dict()) == list(ref.state_dict())
    assert not _same_function(ref, model)  # fresh weights: the test can fail
    mapping = nasir.load_weights(model, ref.state_dict())
    assert {p.how for p in mapping.pairs} == {"name"}
    assert mapping.as_dict() == {k: k for k in ref.state_dict()}
    assert _same_function(ref, model)
    assert int(model.state_dict()["features.1.num_batches_tracked"]) == 7


def test_other_names_map_by_order_and_every_order_pair_is_reported() -> None:
    ref, model = _reference(), _build(NAMED_SPEC)
    mapping = nasir.load_weights(model, ref.state_dict())
    assert len(mapping.matched_by("order")) == len(ref.state_dict())
    assert mapping.as_dict()["features.3.1.running_var"] == "block_bn.running_var"
    assert _same_function(ref, model)
    assert "matched by order (review these)" in mapping.summary()


def test_without_by_order_same_shaped_tensors_are_ambiguous_and_nothing_is_copied() -> None:
    ref, model = _reference(), _build(NAMED_SPEC)
    before = _snapshot(model)
    with pytest.raises(nasir.SpecError, match="AMBIGUOUS") as err:
        nasir.load_weights(model, ref.state_dict(), by_order=False)
    text = str(err.value)
    assert "features.1.running_mean" in text and "features.3.1.running_mean" in text
    assert "stem_bn.running_mean" in text
    assert _unchanged(model, before)


def test_two_same_shaped_tensors_in_another_order_are_refused_naming_both() -> None:
    source = TwoLinears().state_dict()
    model = _build(TWO_LINEARS)
    before = _snapshot(model)
    with pytest.raises(nasir.SpecError, match="AMBIGUOUS") as err:
        nasir.load_weights(model, source, by_order=False)
    for key in ("late.weight", "early.weight", "first.weight", "second.weight"):
        assert key in str(err.value)
    assert _unchanged(model, before)


def test_order_matching_cannot_see_a_swap_but_reports_it() -> None:
    """The documented limit: same shapes in another declaration order import swapped."""
    torch.manual_seed(0)
    ref, model = TwoLinears().eval(), _build(TWO_LINEARS)
    mapping = nasir.load_weights(model, ref.state_dict())
    assert mapping.as_dict()["late.weight"] == "first.weight"  # swapped, but listed
    assert len(mapping.matched_by("order")) == 4
    assert not _same_function(ref, model, shape=(3, 4))


def test_unique_shapes_match_without_order() -> None:
    src = {"a": (3, 2), "b": (5,), "same": (7,)}
    tgt = {"same": (7,), "y": (5,), "x": (3, 2)}
    mapping = match_weights(src, tgt, by_order=False)
    assert mapping.as_dict() == {"a": "x", "b": "y", "same": "same"}
    assert {p.source: p.how for p in mapping.pairs} == {"a": "shape", "b": "shape",
                                                        "same": "name"}


def test_a_name_match_of_another_shape_is_an_error() -> None:
    state = _reference().state_dict()
    state["features.0.weight"] = torch.zeros(8, 3, 5, 5)
    model = _build(NUMERIC_SPEC)
    before = _snapshot(model)
    with pytest.raises(nasir.SpecError, match="different shapes") as err:
        nasir.load_weights(model, state)
    assert "features.0.weight [8, 3, 5, 5]" in str(err.value)
    assert _unchanged(model, before)


def test_wrapper_prefix_is_stripped_only_when_every_key_carries_it() -> None:
    ref, model = _reference(), _build(NUMERIC_SPEC)
    wrapped = {f"module._orig_mod.{k}": v for k, v in ref.state_dict().items()}
    mapping = nasir.load_weights(model, wrapped, by_order=False)
    assert mapping.stripped_prefix == "module._orig_mod."
    assert {p.how for p in mapping.pairs} == {"name"}
    assert _same_function(ref, model)
    # one key without the prefix: nothing is stripped, so names no longer match
    partly = dict(wrapped, extra=torch.zeros(1))
    with pytest.raises(nasir.SpecError, match="AMBIGUOUS") as err:
        match_weights(partly, model.state_dict(), by_order=False)
    assert "checkpoint module._orig_mod.features.1.weight" in str(err.value)
    # a target whose own keys carry the prefix keeps it
    assert match_weights({"model.w": (1,)}, {"model.w": (1,)}).pairs[0].how == "name"


def test_strict_refuses_missing_keys_and_non_strict_reports_them() -> None:
    ref = _reference()
    state = {k: v for k, v in ref.state_dict().items() if k != "classifier.bias"}
    model = _build(NUMERIC_SPEC)
    before = _snapshot(model)
    with pytest.raises(nasir.SpecError, match="one to one") as err:
        nasir.load_weights(model, state)
    assert "classifier.bias" in str(err.value)
    assert _unchanged(model, before)
    mapping = nasir.load_weights(model, state, strict=False)
    assert mapping.unmatched_target == ["classifier.bias"]
    assert torch.equal(model.state_dict()["classifier.bias"], before["classifier.bias"])
    assert torch.equal(model.state_dict()["classifier.weight"], ref.classifier.weight)


def test_integer_for_float_is_refused_but_the_bn_counter_may_change_type() -> None:
    state = _reference().state_dict()
    model = _build(NUMERIC_SPEC)
    before = _snapshot(model)
    bad = dict(state, **{"features.0.weight": state["features.0.weight"].long()})
    with pytest.raises(nasir.SpecError, match="incompatible dtypes"):
        nasir.load_weights(model, bad)
    assert _unchanged(model, before)
    ok = dict(state, **{"features.1.num_batches_tracked": torch.tensor(7.0),
                        "classifier.weight": state["classifier.weight"].double()})
    nasir.load_weights(model, ok)
    assert model.state_dict()["features.1.num_batches_tracked"].dtype == torch.int64
    assert model.state_dict()["classifier.weight"].dtype == torch.float32


_shapes = st.lists(st.integers(1, 4), max_size=3).map(tuple)


@given(st.lists(_shapes, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_shape_matching_is_a_bijection_exactly_when_shapes_are_unique(shapes, rnd) -> None:
    """Law: renamed, reordered tensors are recovered by shape iff no shape repeats."""
    src = {f"src{i}": shape for i, shape in enumerate(shapes)}
    order = list(range(len(shapes)))
    rnd.shuffle(order)
    tgt = {f"tgt{i}": shapes[i] for i in order}
    if len(set(shapes)) == len(shapes):
        mapping = match_weights(src, tgt, by_order=False)
        assert mapping.as_dict() == {f"src{i}": f"tgt{i}" for i in range(len(shapes))}
        assert not mapping.unmatched_source and not mapping.unmatched_target
    else:
        with pytest.raises(nasir.SpecError, match="AMBIGUOUS"):
            match_weights(src, tgt, by_order=False)


@pytest.mark.parametrize("bad", [[1, 2], {"w": [1.0]}, {3: torch.zeros(1)},
                                 {"w": torch.zeros(4, device="meta")},
                                 {"w": torch.zeros(4).to_sparse()}])
def test_a_state_dict_that_is_not_names_to_tensors_is_a_spec_error(bad) -> None:
    with pytest.raises(nasir.SpecError, match="state_dict"):
        nasir.load_weights(_build(TWO_LINEARS), bad)


def test_a_long_report_is_cut_with_a_count() -> None:
    src = {f"s{i}": (2,) for i in range(30)}
    tgt = {f"t{i}": (2,) for i in range(30)} | {"u": (3,)}
    with pytest.raises(nasir.SpecError, match="AMBIGUOUS") as err:
        match_weights(src, tgt, by_order=True)  # lengths differ: no order matching
    assert "s9, ... and 20 more" in str(err.value)


# ---- checkpoint files and the CLI ----------------------------------------------------------

@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    spec = tmp_path / "tiny.arch"
    spec.write_text(NAMED_SPEC, encoding="utf-8")
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": _reference().state_dict()}, ckpt)
    return {"spec": spec, "ckpt": ckpt, "out": tmp_path / "out.pt"}


def _check_output(out: Path) -> None:
    state = torch.load(out, map_location="cpu", weights_only=True)
    model = _build(NAMED_SPEC)
    model.load_state_dict(state)
    assert _same_function(_reference(), model)


def test_cli_imports_a_checkpoint_entry_and_writes_nasir_keys(files, capsys) -> None:
    status = main(["import-weights", str(files["spec"]), str(files["ckpt"]),
                   "-o", str(files["out"])])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "the 'state_dict' entry" in out and "14 by order" in out
    assert "features.3.0.weight -> block_conv.weight" in out
    _check_output(files["out"])
    # an existing output is kept unless --force
    status = main(["import-weights", str(files["spec"]), str(files["ckpt"]),
                   "-o", str(files["out"])])
    assert status == 2
    assert main(["import-weights", str(files["spec"]), str(files["ckpt"]), "-o",
                 str(files["out"]), "--force"]) == 0


def test_cli_no_by_order_refuses_and_writes_nothing(files, capsys) -> None:
    status = main(["import-weights", str(files["spec"]), str(files["ckpt"]), "-o",
                   str(files["out"]), "--no-by-order"])
    assert status == 2
    assert "AMBIGUOUS" in capsys.readouterr().err
    assert not files["out"].exists()


def test_cli_subprocess_end_to_end(files) -> None:
    script = Path(sys.executable).with_name("nasir")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "nasir.cli"]
    result = subprocess.run([*command, "import-weights", str(files["spec"]), str(files["ckpt"]),
                             "-o", str(files["out"])], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    _check_output(files["out"])


@pytest.mark.parametrize("content", [None, b"", b"not a checkpoint at all", b"PK\x03\x04junk"])
def test_missing_or_corrupt_checkpoints_exit_2_naming_the_path(tmp_path, files, capsys,
                                                               content) -> None:
    ckpt = tmp_path / "broken.pth"
    if content is not None:
        ckpt.write_bytes(content)
    status = main(["import-weights", str(files["spec"]), str(ckpt), "-o", str(files["out"])])
    err = capsys.readouterr().err
    assert status == 2
    assert str(ckpt) in err and "Traceback" not in err and "internal error" not in err


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_checkpoint_with_code_is_refused_and_the_code_does_not_run(tmp_path, writer) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": torch.zeros(1)}, "hook": _Evil(marker)}
    if writer == "pickle":
        ckpt.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, ckpt)
    with pytest.raises(nasir.SpecError, match="cannot load checkpoint"):
        load_checkpoint(ckpt)
    assert not marker.exists()
    assert pickle.loads(pickle.dumps(_Evil(marker))) == 0 and marker.exists()  # it was armed


def test_plain_and_model_entry_checkpoints(tmp_path) -> None:
    state = _reference().state_dict()
    for data, where in [(state, "the whole file"), ({"model": state}, "the 'model' entry")]:
        path = tmp_path / "c.pth"
        torch.save(data, path)
        loaded, found = load_checkpoint(path)
        assert found == where and list(loaded) == list(state)


def test_the_official_ghostnet_checkpoint_imports_by_order_into_the_shipped_spec() -> None:
    """The official GhostNet module (transcribed in test_ghostnet_official) names its tensors
    differently from ghostnet.arch; its state_dict imports as is and computes the same."""
    from test_ghostnet_official import OfficialGhostNet

    from nasir.testing.equivalence import max_abs_diff, randomize_for_comparison

    torch.manual_seed(0)
    reference = OfficialGhostNet(0.5)
    randomize_for_comparison(reference, torch.randn(2, 3, 64, 64))
    ours = nasir.compile("ghostnet_0_5").eval()
    before = _snapshot(ours)
    with pytest.raises(nasir.SpecError, match="AMBIGUOUS"):
        nasir.load_weights(ours, reference.state_dict(), by_order=False)
    assert _unchanged(ours, before)
    mapping = nasir.load_weights(ours, reference.state_dict())
    assert len(mapping.pairs) == len(reference.state_dict())
    assert mapping.matched_by("order") and mapping.matched_by("name")
    diff, scale = max_abs_diff(ours, reference, torch.randn(1, 3, 96, 96))
    assert diff <= 1e-4 * max(1.0, scale)
