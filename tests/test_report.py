"""`nasir stats` reports: table rows that add up at every depth, and JSON that is always JSON.

The table is checked as a person reads it: the printed text is parsed back, rows in
[brackets] are subtotals, and every other row must add up exactly to the `total` line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from conftest import assert_finite_json
from hypothesis import given, settings
from hypothesis import strategies as st

import nasir
from nasir.catalog import shipped_networks
from nasir.cli import main
from nasir.ir.graph import IR
from nasir.passes.costs import CountingPolicy, Totals, count_costs
from nasir.report import SELF, breakdown, jsonable, report_json, report_table
from nasir.testing.strategies import irs

COLUMNS = ("params", "macs", "muls", "adds", "flops", "activations")
README = Path(__file__).parents[1] / "README.md"
RESNET20_PARAMS, RESNET20_MACS = 272_474, 40_813_184  # as in tests/test_cli.py
RESNET50_PARAMS, RESNET50_MACS = 25_557_032, 4_089_184_256  # torchvision resnet50


def parse_table(text: str) -> tuple[list[tuple[str, bool, list[int]]], list[int]]:
    """(name, summed, numbers) per body row, and the total row's numbers, from printed text."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    assert len(rules) == 2, text
    body, total_line = lines[rules[0] + 1:rules[1]], lines[rules[1] + 1]

    def numbers(cells: list[str]) -> list[int]:
        return [int(c.strip("[]").replace(",", "")) for c in cells]

    rows = []
    for line in body:
        *left, = line.split()
        cells = left[-len(COLUMNS):]
        bracketed = {c.startswith("[") and c.endswith("]") for c in cells}
        assert len(bracketed) == 1, f"a row is either all subtotals or all summed: {line!r}"
        rows.append((line[:len(line) - len(line.lstrip())] + left[0], not bracketed.pop(),
                     numbers(cells)))
    assert total_line.startswith("total"), text
    return rows, numbers(total_line.split()[1:])


def stats(capsys, *args: str) -> str:
    status = main(["stats", *args])
    out, err = capsys.readouterr()
    assert (status, err) == (0, ""), err
    return out


def column_sums(rows, summed: bool = True) -> list[int]:
    return [sum(r[2][i] for r in rows if r[1] == summed) for i in range(len(COLUMNS))]


# ---- the law: rows add up --------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(ir=irs(), policy=st.sampled_from(["paper", "all"]))
def test_printed_rows_add_up_to_the_total_at_every_depth(ir: IR, policy: str) -> None:
    report = count_costs(ir, CountingPolicy.parse(policy))
    expected = [getattr(report.total, c) for c in COLUMNS]
    for depth in range(5):
        rows, total = parse_table(report_table(report, ir, depth=depth))
        assert total == expected
        if depth == 0:
            assert rows == []
        else:
            assert column_sums(rows) == total, f"depth {depth}"


@settings(max_examples=40, deadline=None)
@given(ir=irs())
def test_every_subtotal_is_its_scope_total_and_the_sum_of_its_parts(ir: IR) -> None:
    """A bracketed row equals the scope's total from count_costs and the summed rows below it."""
    report = count_costs(ir)
    for depth in range(1, 5):
        rows = breakdown(report, ir, depth)
        for i, row in enumerate(rows):
            if SELF not in row.path and row.path not in report.nodes:
                assert row.totals == report.scopes[row.path]
            if row.summed:
                continue
            parts = Totals()
            for below in rows[i + 1:]:
                if below.level <= row.level:
                    break
                if below.summed:
                    parts.add(below.totals)
            assert parts == row.totals, row.path


@settings(max_examples=40, deadline=None)
@given(ir=irs())
def test_deeper_tables_refine_shallower_ones(ir: IR) -> None:
    """Each depth lists every scope the shallower depth did, and never a scope too deep."""
    report = count_costs(ir)
    previous: set[str] = set()
    for depth in range(1, 5):
        paths = {r.path for r in breakdown(report, ir, depth) if SELF not in r.path}
        assert previous <= paths
        scopes = {p for p in paths if p in report.scopes}
        assert all(p.count("/") < depth for p in scopes)
        assert scopes == {k for k in report.scopes if k.count("/") < depth}
        previous = paths


# ---- golden tables ---------------------------------------------------------------------

def test_resnet50_depth_3_breaks_block0_into_self_and_downsample(capsys) -> None:
    """torchvision resnet50: a stage's first Bottleneck has a 1x1 conv + BN downsample."""
    out = stats(capsys, "resnet50", "--depth", "3")
    rows, total = parse_table(out)
    assert total[:2] == [RESNET50_PARAMS, RESNET50_MACS]
    assert column_sums(rows) == total
    names = [name for name, _, _ in rows]
    assert names[:10] == ["x", "conv1", "bn1", "relu", "maxpool", "layer1", "  0",
                          "    (self)", "    downsample", "  1"]
    assert names[-3:] == ["avgpool", "flatten", "fc"]
    assert len(rows) == 5 + 4 * 3 + (3 + 4 + 6 + 3) + 3  # stem, 4 x (stage, self, ds), blocks
    by_name = {}
    stage = ""
    for name, summed, numbers in rows:
        stage = name if not name.startswith(" ") else stage
        by_name[f"{stage}/{name.strip()}" if name.startswith(" ") else name] = (summed, numbers)
    for i, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        layer, inplanes = f"layer{i + 1}", 64 if i == 0 else planes * 2
        downsample = inplanes * planes * 4 + 2 * planes * 4  # 1x1 conv + BN affine
        first = (inplanes * planes + 9 * planes * planes + planes * planes * 4
                 + 2 * (planes + planes + planes * 4) + downsample)
        assert by_name[layer][0] is False and by_name[f"{layer}/0"][0] is False
        assert by_name[f"{layer}/0"][1][0] == first
        assert by_name[f"{layer}/downsample"][0] is True
        assert by_name[f"{layer}/downsample"][1][0] == downsample
        assert by_name[f"{layer}/(self)"][1][0] == first - downsample
        assert by_name[f"{layer}/{blocks - 1}"][0] is True
    assert "[bracketed] rows are subtotals" in out


def test_resnet20_depth_1_keeps_the_readme_rows_and_adds_the_input(capsys) -> None:
    """Every row of the README's first table is printed verbatim; the input row makes the
    activations column add up too (the input's 3x32x32 values are in the total)."""
    out = stats(capsys, "resnet20")
    rows, total = parse_table(out)
    assert [name for name, _, _ in rows] == ["x", "conv1", "bn1", "relu", "layer1", "layer2",
                                             "layer3", "avgpool", "flatten", "fc"]
    assert rows[0] == ("x", True, [0, 0, 0, 0, 0, 3 * 32 * 32])
    assert total[:2] == [RESNET20_PARAMS, RESNET20_MACS]
    assert column_sums(rows) == total
    assert "[" not in out
    readme = README.read_text(encoding="utf-8")
    block = readme.split("$ nasir stats resnet20\n", 1)[1].split("```", 1)[0]
    table = block[block.index("name "):]
    printed = set(out.splitlines())
    missing = [line for line in table.splitlines() if line.strip() and line not in printed]
    assert not missing, f"README rows not printed any more: {missing}"


def test_depth_2_lists_blocks_under_their_stage(capsys) -> None:
    rows, total = parse_table(stats(capsys, "resnet20", "--depth", "2"))
    assert [n for n, _, _ in rows][4:9] == ["layer1", "  0", "  1", "  2", "layer2"]
    assert [s for n, s, _ in rows if n.startswith("layer")] == [False] * 3
    assert column_sums(rows) == total


def test_depth_0_prints_totals_only_and_a_negative_depth_is_an_error(capsys) -> None:
    rows, total = parse_table(stats(capsys, "resnet20", "--depth", "0"))
    assert rows == [] and total[0] == RESNET20_PARAMS
    assert main(["stats", "resnet20", "--depth", "-1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: bad --depth -1")


def test_per_layer_rows_are_node_ids_that_add_up(capsys) -> None:
    rows, total = parse_table(stats(capsys, "resnet20", "--per-layer"))
    assert len(rows) == len(nasir.load("resnet20"))
    assert "layer3/2/conv2" in [n for n, _, _ in rows]
    assert column_sums(rows) == total


# ---- JSON ------------------------------------------------------------------------------

def test_stats_json_of_every_shipped_network_is_finite_json(capsys) -> None:
    assert main(["list", "--json"]) == 0
    names = assert_finite_json(capsys.readouterr()[0])
    assert set(names) == set(shipped_networks())
    for name in names:
        data = assert_finite_json(stats(capsys, name, "--json", "--per-layer"))
        assert data["network"] == name
        for column in COLUMNS:
            assert data[column] == sum(row[column] for row in data["layers"]), (name, column)


def test_non_finite_and_huge_parameter_values_become_strings() -> None:
    ir = nasir.load("resnet20")
    ir.params.update(inf=math.inf, nan=math.nan, rows=[1.5, -math.inf], big=10 ** 400,
                     fine=2 ** 62)
    data = report_json(count_costs(ir), ir)
    text = json.dumps(data, allow_nan=False)
    params = assert_finite_json(text)["parameters"]
    assert params["inf"] == "inf" and params["nan"] == "nan"
    assert params["rows"] == [1.5, "-inf"]
    assert params["big"] == "<integer of 1329 bits>" and params["fine"] == 2 ** 62
    assert jsonable({"k": (1, None, True)}) == {"k": [1, None, True]}
