"""PyTorch backends: compiled modules trace into one graph (torch.compile, torch.export),
and generated Python is straight-line code a person can read.
"""

from __future__ import annotations

import ast

import torch

import nasir
from nasir.backends.python_source import to_python

RESNET20_CONVS = 1 + 3 * 3 * 2 + 2  # stem, 9 basic blocks of 2 convs, 2 projection shortcuts

# A small network touching every wiring op: residual add, concat, slice and an SE gate.
WIRING = """
import "std.arch"
network wiring() {
    input x: 3x8x8
    y = x >> conv_bn_relu(8) as stem
    y = y + (y >> conv(8, 3) >> bn)
    y = concat(y, y >> sepconv(4, stride=1))
    y = y[2:10] >> squeeze_excite(2)
    return y >> classifier(3)
}
"""


def _resnet20() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return nasir.compile("resnet20").eval(), torch.randn(2, 3, 32, 32)


def test_torch_compile_traces_resnet20_into_a_single_graph_without_breaks() -> None:
    model, x = _resnet20()
    graphs: list[torch.fx.GraphModule] = []

    def record(gm: torch.fx.GraphModule, example_inputs):  # an eager backend that counts
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(model, backend=record, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)
    assert len(graphs) == 1
    convs = [n for n in graphs[0].graph.nodes if n.target is torch.conv2d]  # modules inlined
    assert len(convs) == RESNET20_CONVS


def test_torch_compile_with_inductor_runs_a_small_network_on_cpu() -> None:
    ir = nasir.load(WIRING, text=True)
    torch.manual_seed(0)
    model = nasir.compile(ir).eval()
    x = torch.randn(2, 3, 8, 8)
    compiled = torch.compile(model)  # the default backend, inductor
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


def test_torch_export_of_resnet20_keeps_parameter_names_and_outputs() -> None:
    model, x = _resnet20()
    exported = torch.export.export(model, (x,))
    assert set(exported.state_dict) == set(model.state_dict())
    convs = [n for n in exported.graph.nodes if n.op == "call_function"
             and n.target == torch.ops.aten.conv2d.default]
    assert len(convs) == RESNET20_CONVS
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), rtol=0, atol=0)


def _forward_methods(source: str) -> list[ast.FunctionDef]:
    tree = ast.parse(source)
    return [f for cls in tree.body if isinstance(cls, ast.ClassDef)
            for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward"]


_CONTROL_FLOW = (ast.For, ast.While, ast.If, ast.IfExp, ast.ListComp, ast.GeneratorExp,
                 ast.DictComp, ast.SetComp, ast.Try, ast.With)


def control_flow_in_forward(source: str) -> list[str]:
    """`Class.forward:line` for each loop, branch or comprehension inside a forward."""
    found = []
    for forward in _forward_methods(source):
        for node in ast.walk(forward):
            if isinstance(node, _CONTROL_FLOW):
                found.append(f"forward:{node.lineno}")
    return found


def test_the_straight_line_check_rejects_an_interpreter_loop() -> None:
    loop = ("class M:\n    def forward(self, x):\n"
            "        for step in self.steps:\n            x = step(x)\n        return x\n")
    assert control_flow_in_forward(loop) == ["forward:3"]


def test_generated_forward_methods_are_straight_line_code() -> None:
    for ir in (nasir.load("resnet20"), nasir.load(WIRING, text=True)):
        source = to_python(ir)
        forwards = _forward_methods(source)
        assert len(forwards) >= 3  # the network, its blocks and the classifier
        assert control_flow_in_forward(source) == []
        for forward in forwards:
            assert all(isinstance(s, ast.Assign | ast.Return) for s in forward.body)
