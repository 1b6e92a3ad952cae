"""Graphviz rendering: clusters per scope, shapes and costs on nodes."""

from __future__ import annotations

import shutil

import pytest

import nasir
from nasir.backends.graphviz_render import render
from nasir.errors import SpecError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


def test_dot_source_has_a_cluster_per_block_and_costs_on_nodes():
    source = render(nasir.load("resnet20"), fmt="dot").decode()
    assert "cluster_n_stage1__block1" in source
    assert "block basic" in source
    assert "432 params, 442.37K MACs" in source  # conv1: 16*3*3*3 weights, 32*32*432 MACs


def test_depth_collapses_deeper_scopes_into_single_boxes():
    full = render(nasir.load("resnet20"), fmt="dot").decode()
    shallow = render(nasir.load("resnet20"), fmt="dot", depth=1).decode()
    assert "stage1__block1__conv1" in full
    assert "stage1__block1__conv1" not in shallow
    assert "n_stage1__block1 [label=" in shallow


@needs_dot
def test_svg_is_produced_and_names_the_blocks(tmp_path):
    svg = render(nasir.load("resnet20"), fmt="svg").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "stage2" in svg and "block basic" in svg


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
