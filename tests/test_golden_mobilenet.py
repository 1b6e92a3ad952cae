"""MobileNetV2 (Sandler et al., CVPR 2018) in the torchvision layout."""

from __future__ import annotations

import nasir
from nasir.testing.checks import assert_static_matches_torch


def test_mobilenet_v2_has_torchvisions_parameter_count_and_the_papers_300m_madds():
    """torchvision mobilenet_v2: 3,504,872 params; paper Table 3: 300M multiply-adds."""
    ir = nasir.load("mobilenet_v2")
    report = nasir.stats(ir)
    assert report.total.params == 3_504_872
    assert abs(report.total.macs - 300e6) / 300e6 < 0.01
    assert_static_matches_torch(ir)


def test_inverted_residuals_add_only_where_shape_is_kept():
    ir = nasir.load("mobilenet_v2")
    adds = {n.scope[0] for n in ir.nodes() if n.op == "add"}
    # Table 2: repeats after the first of each stage keep stride 1 and width.
    assert adds == {"stage2", "stage3", "stage4", "stage5", "stage6"}
    assert sum(n.op == "add" for n in ir.nodes()) == 1 + 2 + 3 + 2 + 2
