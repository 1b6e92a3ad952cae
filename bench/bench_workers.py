"""What bench/perf_table.py runs inside its worker processes: each function measures one
row (nasir and its baseline, interleaved) and returns medians of (CPU s, wall s)."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import torch
from perf_table import interleaved, timed

import nasir
from nasir.backends.pytorch import to_module
from nasir.passes.costs import count_costs

REPO = Path(__file__).resolve().parents[1]


# ---- start-up baseline --------------------------------------------------------------------

def flopcounter_process(name: str) -> None:
    """What a user without nasir runs to count a network: build it, count with
    FlopCounterMode on the meta device (no weights allocated), print."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = nasir.compile(name)
        x = model.example_inputs(1, device="meta")
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(*x)
    print(params, counter.get_total_flops() // 2)


# ---- parser -------------------------------------------------------------------------------

def parse(rounds: str) -> dict:
    """nasir's parse_text against Lark's tree-building parse plus a tree transform, over
    every shipped spec."""
    from importlib import resources

    from lark import Lark

    from nasir.parse import parser as P
    from nasir.parse.astcache import parse_cached

    texts = [(str(p), p.read_text()) for p in sorted((REPO / "specs").glob("*.arch"))]
    grammar = resources.files("nasir.grammar").joinpath("arch.lark").read_text()
    tree_parser = Lark(grammar, parser="lalr", propagate_positions=True,
                       start=["start", "expr"], maybe_placeholders=True)

    def ours() -> None:
        for name, text in texts:
            P.parse_text(text, name)

    def baseline() -> None:
        for name, text in texts:
            tree = tree_parser.parse(text, start="start")
            P.tree_to_ast(tree, name, P.source_lines(text))

    def cached() -> None:  # a spec parsed before: what repeated commands do
        for name, text in texts:
            parse_cached(text, name)

    a, b, c = interleaved([timed(ours), timed(baseline), timed(cached)], int(rounds), warmup=2)
    return {"bytes": sum(len(t) for _, t in texts), "nasir": a, "baseline": b, "cached": c}


# ---- static counting ----------------------------------------------------------------------

def _count_nasir(name: str) -> None:
    report = count_costs(nasir.load(name))
    assert report.total.params > 0


def _flopcounter(ir, device: str) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device(device):
        model = to_module(ir)
        x = model.example_inputs(1, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*x)
    assert counter.get_total_flops() > 0 and sum(p.numel() for p in model.parameters()) > 0


def _ptflops(ir) -> None:
    from ptflops import get_model_complexity_info

    model = to_module(ir).eval()
    shape = next(iter(model.input_shapes.values()))
    macs, params = get_model_complexity_info(model, tuple(shape), as_strings=False,
                                             print_per_layer_stat=False, verbose=False)
    assert macs > 0 and params > 0


def _fvcore(ir) -> None:
    from fvcore.nn import FlopCountAnalysis, parameter_count

    model = to_module(ir).eval()
    analysis = FlopCountAnalysis(model, model.example_inputs(1))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert analysis.total() > 0 and parameter_count(model)[""] > 0


def count(name: str, rounds: str) -> dict:
    """Load + count from the spec, against building the module (from IR loaded beforehand,
    as a user's own model class would build) and counting it with each tool."""
    import logging

    logging.disable(logging.WARNING)
    ir = nasir.load(name)
    measures = {"nasir": timed(lambda: _count_nasir(name)),
                "FlopCounterMode, module on meta": timed(lambda: _flopcounter(ir, "meta")),
                "FlopCounterMode, module on cpu": timed(lambda: _flopcounter(ir, "cpu"))}
    missing = []
    for tool, fn in (("ptflops", _ptflops), ("fvcore", _fvcore)):
        if importlib.util.find_spec(tool) is None:
            missing.append(tool)
        else:
            measures[tool] = timed(lambda fn=fn: fn(ir))
    samples = interleaved(list(measures.values()), int(rounds))
    result = dict(zip(measures, samples, strict=True))
    return {"nasir": result.pop("nasir"), "baselines": result, "missing": missing}


# ---- scaling ------------------------------------------------------------------------------

def scale(kind: str, n: str, phase: str, rounds: str) -> dict:
    from scaling_specs import spec_text

    from nasir.backends.python_source import to_python

    text = spec_text(kind, int(n))
    nodes = len(nasir.load(text, text=True))
    phases = {
        "check": lambda: nasir.load(text, text=True),
        "stats": lambda: count_costs(nasir.load(text, text=True)),
        "module": lambda: to_module(nasir.load(text, text=True)),
        "source": lambda: to_python(nasir.load(text, text=True)),
    }
    (sample,) = interleaved([timed(phases[phase])], int(rounds))
    return {"nodes": nodes, "sample": sample}


# ---- compiled models ----------------------------------------------------------------------

def model(name: str, mode: str, batch: str, size: str, rounds: str) -> dict:
    from reference_models import MODELS

    from nasir.testing.equivalence import copy_renamed
    from nasir.testing.generated import build_generated

    make, spec, rename = MODELS[name]
    torch.manual_seed(0)
    reference = make()
    ir = nasir.load(spec)
    ours, generated = to_module(ir), build_generated(ir, tempfile.mkdtemp())
    copy_renamed(reference, ours, rename)
    generated.load_state_dict(ours.state_dict())
    x = torch.randn(int(batch), 3, int(size), int(size))
    target = torch.randint(0, 1000, (int(batch),))
    models = {"reference": reference, "module": ours, "source": generated}
    steps = {key: _step(m, mode, x, target) for key, m in models.items()}
    samples = interleaved([timed(step) for step in steps.values()], int(rounds))
    return dict(zip(steps, samples, strict=True))


def _step(module: torch.nn.Module, mode: str, x: torch.Tensor, target: torch.Tensor):
    if mode == "infer":
        module.eval()

        def infer() -> None:
            with torch.no_grad():
                module(x)
        return infer
    module.train()
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9)

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(module(x), target).backward()
        optimizer.step()
    return train


# ---- adder layers -------------------------------------------------------------------------

def adder(rounds: str) -> dict:
    """Forward+backward of nasir's Adder2d (the C++ kernel where it builds, else the PyTorch
    path) against nn.Conv2d of the same shape, on the layers of bench/adder_speed.py."""
    import adder_speed

    from nasir.layers import adder_ext

    variant = "cpp" if adder_ext.load_extension() is not None else "torch"
    rows = []
    for shape in adder_speed.SHAPES:
        steps = [adder_speed.make_step("conv", shape), adder_speed.make_step(variant, shape)]
        conv, ours = interleaved([timed(step) for step in steps], int(rounds))
        rows.append({"shape": shape.label(), "conv": conv, variant: ours,
                     "variants": [variant]})
    return {"rows": rows}
