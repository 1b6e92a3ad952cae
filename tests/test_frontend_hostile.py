"""The front end (reading, parsing, importing) against hostile input.

Every spec is untrusted: imports stay inside the spec's directory tree, the shipped specs and
the directories the user widens the search with; a file that is not a `.arch` spec is never
quoted; sizes, numbers and nesting are bounded by the limits in `nasir.limits`, reported
with a location instead of a `RecursionError`; excerpts show the line Lark reports whatever
the line terminators.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_refused, run_real_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nasir
from nasir import limits
from nasir.cli import main
from nasir.errors import SourceLoc, SpecError
from nasir.parse import ast, load_program, parse_text, parse_value
from nasir.parse.loader import load_text, shipped_specs_dir
from nasir.parse.parser import source_lines

SPECS = sorted(shipped_specs_dir().glob("*.arch"))
NET = "network n() {\n    input x: 3x8x8\n    return x >> relu\n}\n"


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_text(text)
    return info.value


def _check(args: list[str], capsys) -> tuple[int, str]:
    status = main(args)
    out, err = capsys.readouterr()
    return status, out + err


# ---- the agreed syntax: numeric labels and `default` -----------------------------------

def test_a_digit_label_is_a_string_literal() -> None:
    module = parse_text("network n(x) { scope features { y = x >> conv(8, 3) as 0 }\n"
                        " return y >> relu as 12 }")
    scope = module.definitions[0].body[0]
    assert isinstance(scope, ast.Scope)
    call = scope.body[0].value.stages[0]
    assert call.label == ast.Literal(call.label.loc, "0")
    assert module.definitions[0].body[1].value.stages[0].label.value == "12"


def test_a_default_statement_becomes_a_default_node() -> None:
    module = parse_text("network n(x) {\n  default bn(eps=1e-3, momentum=0.01)\n  return x }")
    stmt = module.definitions[0].body[0]
    assert isinstance(stmt, ast.Default)
    assert stmt.op == "bn" and (stmt.loc.line, stmt.loc.col) == (2, 3)
    assert [(a.name, a.value.value) for a in stmt.args] == [("eps", 1e-3), ("momentum", 0.01)]


# ---- imports ------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path: Path, monkeypatch) -> Path:
    """proj/ (the spec's directory) beside lib/ (outside it)."""
    monkeypatch.delenv("NASIR_IMPORT_PATH", raising=False)
    (tmp_path / "proj").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "l.arch").write_text("block b(x) { return x >> relu }\n")
    return tmp_path


def _importer(tree: Path, target: str) -> Path:
    spec = tree / "proj" / "n.arch"
    spec.write_text(f'import "{target}"\n' + NET)
    return spec


@pytest.mark.parametrize("target", ["../lib/l.arch", "LIB_ABSOLUTE"])
def test_an_import_outside_the_specs_directory_is_refused(tree: Path, target: str) -> None:
    target = str(tree / "lib" / "l.arch") if target == "LIB_ABSOLUTE" else target
    with pytest.raises(SpecError) as info:
        load_program(_importer(tree, target))
    err = info.value
    assert "outside the spec's directory" in err.message and "--import-path" in err.expected
    assert (err.loc.line, err.loc.col) == (1, 1)


def test_a_symlink_out_of_the_tree_is_refused(tree: Path) -> None:
    (tree / "proj" / "link.arch").symlink_to(tree / "lib" / "l.arch")
    with pytest.raises(SpecError, match="outside the spec's directory"):
        load_program(_importer(tree, "link.arch"))


def test_widening_by_option_or_environment_allows_the_import(tree: Path, monkeypatch,
                                                             capsys) -> None:
    spec = _importer(tree, "../lib/l.arch")
    assert "b" in load_program(spec, import_paths=[tree / "lib"]).definitions
    status, _ = _check(["check", str(spec), "--import-path", str(tree / "lib")], capsys)
    assert status == 0
    monkeypatch.setenv("NASIR_IMPORT_PATH", os.pathsep.join(["", str(tree / "lib")]))
    assert "b" in load_program(spec).definitions
    # a widened directory is also searched by name
    assert "b" in load_program(_importer(tree, "l.arch")).definitions


def test_a_symlink_loop_is_a_spec_error(tree: Path, capsys) -> None:
    (tree / "proj" / "a.arch").symlink_to(tree / "proj" / "b.arch")
    (tree / "proj" / "b.arch").symlink_to(tree / "proj" / "a.arch")
    with pytest.raises(SpecError, match="cannot resolve import") as info:
        load_program(_importer(tree, "a.arch"))
    assert info.value.loc.line == 1
    status, output = _check(["check", str(tree / "proj" / "a.arch")], capsys)
    assert status == 2 and "cannot resolve spec file" in output


def test_spec_text_imports_stay_in_the_current_directory(tree: Path, monkeypatch) -> None:
    import nasir

    monkeypatch.chdir(tree / "proj")
    text = 'import "../lib/l.arch"\nnetwork n() { input x: 3x8x8\n return x >> b }'
    with pytest.raises(SpecError, match="outside the spec's directory"):
        load_text(text)
    ir = nasir.load(text, text=True, import_paths=[str(tree / "lib")])
    assert len(ir.graph) > 0


def test_an_import_of_a_file_that_is_not_a_spec_never_quotes_it(tree: Path) -> None:
    secret = tree / "proj" / "secret.txt"
    secret.write_text("root:x:0:0:SECRET\n")
    with pytest.raises(SpecError) as info:
        load_program(_importer(tree, "secret.txt"))
    assert "not a .arch spec" in info.value.message
    assert "SECRET" not in info.value.format()


@pytest.mark.parametrize("path", ["/etc/passwd", "/proc/self/environ"])
def test_checking_a_system_file_says_it_is_not_a_spec_without_content(path: str,
                                                                       capsys) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    status, output = _check(["check", path], capsys)
    assert status == 2
    assert "is not a .arch spec" in output
    assert output.count("\n") <= 3 and "root:" not in output and "PATH=" not in output


def test_a_symlinked_root_spec_must_point_at_a_spec(tmp_path: Path, capsys) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET line\n")
    (tmp_path / "evil.arch").symlink_to(secret)
    status, output = _check(["check", str(tmp_path / "evil.arch")], capsys)
    assert status == 2 and "not a .arch spec" in output and "SECRET" not in output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_or_directory_named_like_a_spec_is_refused_without_blocking(tmp_path: Path,
                                                                            capsys) -> None:
    os.mkfifo(tmp_path / "pipe.arch")
    (tmp_path / "dir.arch").mkdir()
    for name in ("pipe.arch", "dir.arch"):
        status, output = _check(["check", str(tmp_path / name)], capsys)
        assert status == 2 and "not a regular file" in output


def test_an_oversized_spec_is_refused_before_parsing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("nasir.parse.loader.MAX_SPEC_BYTES", 100)
    spec = tmp_path / "big.arch"
    spec.write_text("# " + "x" * 200 + "\n" + NET)
    with pytest.raises(SpecError, match=r"limit of 100 bytes \(MAX_SPEC_BYTES\)"):
        load_program(spec)
    with pytest.raises(SpecError, match="MAX_SPEC_BYTES"):
        parse_text("#" * (limits.MAX_SPEC_BYTES + 1))


def test_a_long_import_chain_is_a_located_limit_error(tmp_path: Path) -> None:
    count = 2000
    for i in range(count):
        body = f'import "f{i + 1}.arch"\n' if i + 1 < count else ""
        (tmp_path / f"f{i}.arch").write_text(body + f"let c{i} = {i}\n")
    with pytest.raises(SpecError) as info:
        load_program(tmp_path / "f0.arch")
    assert "MAX_IMPORT_DEPTH" in info.value.message
    assert info.value.loc.line == 1 and info.value.loc.file.endswith(
        f"f{limits.MAX_IMPORT_DEPTH - 1}.arch")


def test_too_many_imported_files_is_a_located_limit_error(tmp_path: Path) -> None:
    count = limits.MAX_IMPORTED_FILES + 5
    for i in range(count):
        (tmp_path / f"g{i}.arch").write_text(f"let c{i} = {i}\n")
    root = tmp_path / "root.arch"
    root.write_text("".join(f'import "g{i}.arch"\n' for i in range(count)))
    with pytest.raises(SpecError) as info:
        load_program(root)
    assert "MAX_IMPORTED_FILES" in info.value.message
    assert info.value.loc.line == limits.MAX_IMPORTED_FILES  # the root counts as one file


def test_invalid_utf8_is_located_without_quoting_the_bytes(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "bad.arch"
    spec.write_bytes(b"\xef\xbb\xbflet a = 1\nlet \xc3\xa9b = \xff\xfe SECRET\n")
    status, output = _check(["check", str(spec)], capsys)
    assert status == 2
    assert "bad.arch:2:10: error: invalid UTF-8 at line 2, column 10" in output
    assert "SECRET" not in output


def test_a_nul_byte_is_located_without_quoting_the_file(tmp_path: Path) -> None:
    spec = tmp_path / "nul.arch"
    spec.write_bytes(b"let a = 1\nlet b\x00 = SECRET\n")
    with pytest.raises(SpecError) as info:
        load_program(spec)
    assert (info.value.loc.line, info.value.loc.col) == (2, 6)
    assert "SECRET" not in info.value.format()


def test_a_bom_and_crlf_line_endings_are_accepted(tmp_path: Path) -> None:
    spec = tmp_path / "n.arch"
    spec.write_bytes(b"\xef\xbb\xbf" + NET.replace("\n", "\r\n").encode())
    assert load_program(spec).networks() == ["n"]
    assert load_text("\ufeff" + NET).networks() == ["n"]


# ---- numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("digits", [str(limits.MAX_INT + 1), "9" * 5000, "1" * 100_000])
def test_an_integer_literal_above_max_int_is_a_located_error(digits: str) -> None:
    err = _error(f"let a = 1\nlet b = {digits}\n")
    assert "MAX_INT" in err.message and (err.loc.line, err.loc.col) == (2, 9)
    with pytest.raises(SpecError, match="MAX_INT"):
        parse_value(digits)
    with pytest.raises(SpecError, match="MAX_INT"):
        parse_text(f"network n() {{ input x: 3x{digits}x8\n return x }}")


def test_max_int_itself_and_leading_zeros_are_fine() -> None:
    assert parse_value(str(limits.MAX_INT)).value == limits.MAX_INT
    assert parse_value("0" * 5000 + "7").value == 7


@pytest.mark.parametrize("text", ["1e999", "1" * 400 + ".0", "9.9e308"])
def test_a_float_literal_that_overflows_is_a_located_error(text: str) -> None:
    err = _error(f"let a = [1,\n  {text}]")
    assert err.message == "number too large" and (err.loc.line, err.loc.col) == (2, 3)


# ---- nesting -------------------------------------------------------------------------------

N = 5000
DEEP = {
    "parentheses": "let a = " + "(" * N + "1" + ")" * N,
    "lists": "let a = " + "[" * N + "]" * N,
    "right-nested sum": "let a = " + "1 + (" * N + "1" + ")" * N,
    "calls": "let a = " + "f(" * N + ")" * N,
    "ifs": "network n(x) {\n" + "if true {\n" * N + "}" * N + "\nreturn x }",
    "scopes": "network n(x) {\n" + "scope s {\n" * N + "}" * N + "\nreturn x }",
    "conditionals": "let a = " + "if true then 1 else " * N + "2",
    "negations": "let a = " + "-" * N + "1",
    "indexing": "let a = x" + "[0]" * N,
}


@pytest.mark.parametrize("name", list(DEEP))
def test_deep_nesting_is_a_located_limit_error(name: str) -> None:
    text = DEEP[name]
    err = _error(text)
    assert err.message == f"nesting deeper than {limits.MAX_NESTING} levels (MAX_NESTING)"
    assert err.loc.line_text == source_lines(text)[err.loc.line - 1]
    if name in ("parentheses", "lists", "right-nested sum"):
        with pytest.raises(SpecError, match="MAX_NESTING"):
            parse_value(text.removeprefix("let a = "))


def test_nesting_within_the_limit_parses() -> None:
    depth = limits.MAX_NESTING - 2
    parse_text("let a = " + "(" * depth + "1" + ")" * depth)
    parse_text("network n(x) {\n" + "if true {\n" * depth + "}" * depth + "\nreturn x }")


def test_long_flat_chains_are_not_nesting() -> None:
    stages = 60_000  # 480 KB of " >> relu": about the longest pipe MAX_SPEC_BYTES admits
    module = parse_text("network n(x) { return x" + " >> relu" * stages + " }")
    assert len(module.definitions[0].body[0].value.stages) == stages
    terms = 10_000
    value = parse_value("1" + " + 1" * terms)
    # a sum stays a left-deep BinOp tree (the elaborator walks its left spine iteratively)
    depth = 0
    while isinstance(value, ast.BinOp):
        value, depth = value.left, depth + 1
    assert depth == terms


# ---- lark's error paths ----------------------------------------------------------------------

def test_errors_raised_inside_the_tree_transform_stay_spec_errors() -> None:
    err = _error("let a = 1\nblock b = f(x=1)")
    assert "only networks" in err.message and err.loc.line == 2


# ---- source text: line terminators and excerpts ------------------------------------------

TERMINATORS = ["\f", "\u2028", "\u2029", "\u0085", "\x1c", "\x1d", "\x1e", "\v", "\r"]


@pytest.mark.parametrize("sep", TERMINATORS, ids=[repr(t) for t in TERMINATORS])
def test_excerpts_show_the_line_lark_reports_for_any_terminator(sep: str) -> None:
    text = f"# a comment{sep}with a separator\nlet c = 3 4\n"
    err = _error(text)
    assert err.loc.line == 2 and err.loc.line_text == "let c = 3 4"
    excerpt = err.loc.excerpt()
    assert excerpt.startswith("   2 | let c = 3 4\n")
    head_error = _error(f"let a = 1{sep}7\n")
    assert head_error.loc.line == 1
    assert head_error.loc.line_text == f"let a = 1{sep}7"
    shown_line = head_error.loc.excerpt().splitlines()[0]
    assert sep not in shown_line and shown_line.isprintable()


def test_excerpts_keep_columns_with_tabs_and_control_characters() -> None:
    err = _error("let a =\t1 \x1b[31m 2")
    line, caret = err.loc.excerpt().split("\n")
    assert line.isprintable()
    assert line[caret.index("^")] == "\u241b"  # the escape shown as a control picture


def test_an_unexpected_token_is_shown_escaped_and_short() -> None:
    err = _error('let a = 1 "\x1b[2J' + "x" * 1000 + '"')
    assert err.message.isprintable() and len(err.message) < 100 and "\\x1b" in err.message


def test_a_long_line_excerpt_is_a_window_around_the_error() -> None:
    err = _error("let a = " + "1 + " * 10_000 + "1 2")
    line, caret = err.loc.excerpt().split("\n")
    assert len(line) < 200 and line[caret.index("^")] == "2"


# ---- the real command ----------------------------------------------------------------------

def test_the_real_command_refuses_a_system_file_without_a_traceback(tmp_path: Path) -> None:
    deep = tmp_path / "deep.arch"
    deep.write_text("let a = " + "[" * N + "]" * N + "\n")
    for path in ("/etc/passwd", str(deep)):
        result = run_real_cli("check", path)
        assert_refused(result)
        assert "root:" not in result.stderr


# ---- properties ----------------------------------------------------------------------------

def _assert_clean(text: str) -> None:
    """`text` parses, or fails with a SpecError located inside it."""
    try:
        parse_text(text)
    except SpecError as err:
        lines = source_lines(text.removeprefix("\ufeff"))
        loc: SourceLoc = err.loc
        assert loc is not None, err
        assert 1 <= loc.line <= len(lines), err
        assert loc.line_text == lines[loc.line - 1], err
        assert 1 <= loc.col <= len(loc.line_text) + 1, err
        err.format()


_SPEC_TEXTS = [path.read_text(encoding="utf-8") for path in SPECS]
_SEPARATORS = st.sampled_from(["\n", "\r\n", "\r", "\f", "\u2028", "\u2029", "\u0085", "\x1c",
                               "\v", "\t", "\x00", "\ufeff"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_give_a_located_error(data: bytes) -> None:
    _assert_clean(data.decode("utf-8", errors="replace"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_parses_or_gives_a_located_error(text: str) -> None:
    _assert_clean(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_SPEC_TEXTS))), st.floats(0, 1), _SEPARATORS, st.floats(0, 1))
def test_mangled_shipped_specs_parse_or_give_a_located_error(index: int, cut: float, sep: str,
                                                             share: float) -> None:
    text = _SPEC_TEXTS[index]
    text = text[: int(len(text) * cut)]
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    for i in newlines[: int(len(newlines) * share)]:
        text = text[:i] + sep + text[i + 1:] if sep != "\r\n" else text
    if sep == "\r\n":
        text = text.replace("\n", "\r\n")
    _assert_clean(text)


def test_an_unexpected_exception_in_the_transform_is_still_a_located_spec_error(
        monkeypatch) -> None:
    def broken(digits: str, loc: SourceLoc) -> int:
        raise ValueError("boom")

    monkeypatch.setattr("nasir.parse.parser._int", broken)
    err = _error("let a = [1,\n 2]")
    assert "boom" in err.message and err.loc is not None and err.loc.line == 1


def test_string_statements_anywhere_in_a_body_are_documentation_not_code() -> None:
    """Found by tests/test_fuzz.py: a second string statement used to reach the elaborator."""
    text = ('block b(x) {\n    "doc"\n    "more doc"\n    for i in range(2) { "loop doc"\n'
            '        x = x >> relu }\n    return x\n}\n'
            'network main() {\n    input x: 3x8x8\n    return x >> b\n}\n')
    module = parse_text(text)
    block = module.definitions[0]
    assert block.doc == "doc"
    assert [type(s).__name__ for s in block.body] == ["For", "Return"]
    assert [n.op for n in nasir.load(text, text=True).nodes()] == ["input", "relu", "relu"]
