"""Graphviz rendering: clusters per scope, shapes and costs on nodes."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from xml.etree import ElementTree

import graphviz
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nasir
from nasir.backends import graphviz_render as render_module
from nasir.backends.graphviz_render import (
    MAX_RENDER_NODES,
    box_count,
    render,
    run_dot,
)
from nasir.cli import main
from nasir.errors import SpecError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


def test_dot_source_has_a_cluster_per_block_and_costs_on_nodes():
    source = render(nasir.load("resnet20"), fmt="dot").decode()
    assert "cluster_n_layer1__0" in source
    assert "block basic" in source
    assert "432 params, 442.37K MACs" in source  # conv1: 16*3*3*3 weights, 32*32*432 MACs


def test_depth_collapses_deeper_scopes_into_single_boxes():
    full = render(nasir.load("resnet20"), fmt="dot").decode()
    shallow = render(nasir.load("resnet20"), fmt="dot", depth=1).decode()
    assert "layer1__0__conv1" in full
    assert "layer1__0__conv1" not in shallow
    assert "n_layer1__0 [label=" in shallow


@needs_dot
def test_svg_is_produced_and_names_the_blocks(tmp_path):
    svg = render(nasir.load("resnet20"), fmt="svg").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "layer2" in svg and "block basic" in svg


def test_unknown_format_is_a_user_error():
    with pytest.raises(SpecError, match="cannot render"):
        render(nasir.load("resnet20"), fmt="gif")


@needs_dot
def test_nasnet_a_mobile_renders_its_cells_as_clusters():
    """Issue: a readable NASNet-A Mobile diagram, cells as clusters, costs on nodes."""
    ir = nasir.load("nasnet_a_mobile")
    svg = render(ir, fmt="svg", depth=1).decode()
    assert "<svg" in svg
    for cell in ("cell_stem_0", "cell_0", "reduction_cell_0", "reduction_cell_1", "cell_11"):
        assert f">{cell}<" in svg
    assert "cell nasnet_a_normal" in svg and "cell nasnet_a_reduction" in svg
    full = render(ir, fmt="dot").decode()
    assert full.count("subgraph cluster_") >= 14  # 2 stem cells + 12 cells, at least


# ---- bounds: the size of a diagram, the time and the failures of `dot` ----------------------

def nested_network(blocks: int, subs: int, ops: int) -> str:
    """Spec text: `blocks` scopes of `subs` scopes of `ops` relus each, plus the input."""
    return f"""
network nested() {{
    input x: 3x4x4
    y = x
    for i in range({blocks}) {{
        scope ("b" + str(i)) {{
            for j in range({subs}) {{
                scope ("s" + str(j)) {{
                    for k in range({ops}) {{
                        y = y >> relu
                    }}
                }}
            }}
        }}
    }}
    return y
}}
"""


def fake_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """Put a `dot` that runs `script` (sh) first on PATH; it leaves a mark when started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dot = bin_dir / "dot"
    dot.write_text(f"#!/bin/sh\ntouch {tmp_path / 'dot-ran'}\n{script}\n")
    dot.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return tmp_path / "dot-ran"


def drawn_boxes(dot_source: str) -> int:
    """Node statements in DOT source: a box each (edges and attributes are not)."""
    return len(re.findall(r'^\s*(?:n_\S*|"n_[^\n]*") \[label=', dot_source, re.M))


@pytest.mark.parametrize("name", ["resnet20", "ghostnet", "nasnet_a_mobile"])
@pytest.mark.parametrize("depth", [None, 0, 1, 2])
def test_box_count_is_the_number_of_boxes_the_dot_source_draws(name: str,
                                                               depth: int | None) -> None:
    ir = nasir.load(name)
    assert box_count(ir, depth) == drawn_boxes(render(ir, fmt="dot", depth=depth).decode())


def test_a_huge_diagram_is_refused_quickly_before_dot_runs_with_depths_that_fit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks, subs, ops = 20, 10, 20  # 4,001 boxes in full; 21 at --depth 0, 201 at --depth 1
    ir = nasir.load(nested_network(blocks, subs, ops), text=True)
    ran = fake_dot(tmp_path, monkeypatch, "exit 0")
    start = time.monotonic()
    with pytest.raises(SpecError) as err:
        render(ir, fmt="svg")
    assert time.monotonic() - start < 5
    full, top, middle = blocks * subs * ops + 1, blocks + 1, blocks * subs + 1
    assert err.value.message == (f"the diagram of nested would draw {full:,} boxes, more than "
                                 f"the limit of {MAX_RENDER_NODES:,} (MAX_RENDER_NODES) that "
                                 "Graphviz's `dot` lays out in reasonable time")
    assert f"--depth 0 draws {top:,}, --depth 1 draws {middle:,} boxes" in err.value.expected
    assert not ran.exists()
    assert render(ir, fmt="dot").count(b"[label=") >= full  # the DOT source is not limited


def test_the_node_limit_counts_the_boxes_at_the_depth_asked_for() -> None:
    ir = nasir.load(nested_network(4, 5, 6), text=True)  # 121 / 5 / 21 boxes
    with pytest.raises(SpecError, match="would draw 121 boxes"):
        render(ir, fmt="svg", max_nodes=120)
    with pytest.raises(SpecError) as err:
        render(ir, fmt="svg", depth=1, max_nodes=20)
    assert "would draw 21 boxes" in err.value.message
    assert err.value.expected.startswith("a shallower diagram: --depth 0 draws 5 boxes")


def test_a_negative_depth_is_a_user_error() -> None:
    with pytest.raises(SpecError, match="--depth -1 is negative"):
        render(nasir.load("resnet20"), fmt="svg", depth=-1)


def test_a_dot_that_runs_too_long_is_stopped_with_the_limit_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = fake_dot(tmp_path, monkeypatch, "exec sleep 30")
    start = time.monotonic()
    with pytest.raises(SpecError) as err:
        render(nasir.load("resnet20"), fmt="svg", timeout_s=0.5)
    assert time.monotonic() - start < 10 and ran.exists()
    assert err.value.message == "Graphviz's `dot` did not finish within 0.5 s (RENDER_TIMEOUT_S)"
    assert "--depth 1" in err.value.expected


def test_a_dot_that_crashes_is_a_clean_error_quoting_its_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dot(tmp_path, monkeypatch, 'echo "Error: layout blew up" >&2\nkill -SEGV $$')
    with pytest.raises(SpecError) as err:
        render(nasir.load("resnet20"), fmt="svg")
    assert err.value.message == ("Graphviz's `dot` was killed by signal SIGSEGV\n"
                                 "  dot: Error: layout blew up")


def test_a_dot_that_fails_is_a_clean_error_with_its_first_stderr_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dot(tmp_path, monkeypatch, "for i in 1 2 3 4 5 6 7 8; do echo line$i >&2; done; exit 3")
    with pytest.raises(SpecError) as err:
        render(nasir.load("resnet20"), fmt="png")
    lines = err.value.message.splitlines()
    assert lines[0] == "Graphviz's `dot` failed with exit status 3"
    assert lines[1:] == [f"  dot: line{i}" for i in range(1, 6)]  # the first five only


def test_a_missing_dot_says_how_to_install_it(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    with pytest.raises(SpecError, match="`dot` program is not installed") as err:
        render(nasir.load("resnet20"), fmt="svg")
    assert "apt-get install graphviz" in err.value.expected


def test_cli_render_of_a_huge_network_exits_2_and_writes_nothing(tmp_path: Path,
                                                                 capsys) -> None:
    spec = tmp_path / "nested.arch"
    spec.write_text(nested_network(20, 10, 20))
    status = main(["render", str(spec), "-o", str(tmp_path / "n.svg")])
    err = capsys.readouterr().err
    assert status == 2 and "MAX_RENDER_NODES" in err and "--depth 1 draws 201" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nested.arch"]


# ---- hostile names cannot change the DOT syntax -------------------------------------------

HOSTILE = st.text(alphabet='ab "\\{}<>[];=,:&#\n\'', min_size=1, max_size=30)


def svg_texts(svg: bytes) -> list[str]:
    root = ElementTree.fromstring(svg)
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


@needs_dot
@settings(max_examples=25, deadline=None)
@given(HOSTILE)
@example("<b>bold?</b>")  # an HTML label, if passed unescaped
@example("ends in a backslash\\")  # escapes the closing quote, if passed unescaped
@example("\\N \\G \\L")  # dot's own escapes: the node name, the graph name, ...
@example("a&b; &amp; &#60;")  # entities; a bare & made dot's SVG invalid XML
@example('"} evil [label="x"]; {"')
def test_any_label_is_drawn_as_exactly_its_text(text: str) -> None:
    graph = graphviz.Digraph(render_module._text(text))
    graph.node(render_module._text(text), render_module._text(text))
    drawn = [line.replace("\xa0", " ").strip() for line in svg_texts(run_dot(graph.source, "svg"))]
    assert [line for line in drawn if line] == [ln.strip() for ln in text.split("\n") if ln.strip()]


@needs_dot
def test_a_hostile_network_name_is_drawn_literally() -> None:
    ir = nasir.load("resnet20")
    ir.name = 'x" ] ; evil [label="<b>owned</b>"] ; "\\'
    svg = render(ir, fmt="svg", depth=0)
    title = svg_texts(svg)[0]
    assert title.startswith(f"{ir.name}: ")
    assert "evil" not in [node.text for node in ElementTree.fromstring(svg).iter(
        "{http://www.w3.org/2000/svg}title")]
