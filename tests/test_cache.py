"""nasir's private cache: used only where no one else can write, and never required."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nasir import cache
from nasir.parse import parser


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("NASIR_CACHE_DIR", str(root))
    parser._parser.cache_clear()
    yield root
    parser._parser.cache_clear()


def _entries(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_parser_tables_are_stored_once_and_loaded_back(cache_root: Path) -> None:
    built = parser._parser()
    (name,) = _entries(cache_root)
    assert name.startswith("arch-lalr-") and (cache_root / name).stat().st_size > 1000
    assert os.stat(cache_root).st_mode & 0o077 == 0  # a private folder
    parser._parser.cache_clear()
    loaded = parser._parser()
    assert loaded is not built
    text = "network n() { input x: 3x8x8\n return x >> relu }"
    assert loaded.parse(text, start="start") == built.parse(text, start="start")


def test_a_damaged_entry_is_rebuilt_and_replaced(cache_root: Path) -> None:
    parser._parser()
    (name,) = _entries(cache_root)
    (cache_root / name).write_bytes(b"not a pickle")
    parser._parser.cache_clear()
    assert parser.parse_text("network n() { input x: 3x8x8\n return x }").definitions
    assert (cache_root / name).read_bytes() != b"not a pickle"


def test_a_folder_others_can_write_is_not_used(cache_root: Path) -> None:
    cache_root.mkdir(mode=0o700)
    os.chmod(cache_root, 0o777)
    assert cache.cache_dir() is None
    parser._parser()
    assert _entries(cache_root) == []


def test_a_symlinked_folder_or_entry_is_not_followed(cache_root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    cache_root.symlink_to(elsewhere)
    assert cache.cache_dir() is None
    cache_root.unlink()
    cache_root.mkdir(mode=0o700)
    secret = tmp_path / "secret"
    secret.write_bytes(b"planted")
    (cache_root / "entry").symlink_to(secret)
    assert cache.read_entry("entry") is None


def test_caching_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASIR_CACHE_DIR", "off")
    assert cache.cache_dir() is None
    assert cache.write_entry("x", b"y") is False


def test_stats_start_up_imports_neither_torch_nor_networkx_nor_lark_once_cached(
        tmp_path: Path) -> None:
    """What keeps `nasir stats` quick to start: a spec parsed before is read from the cache
    (no Lark), counting needs no torch, and the IR no networkx."""
    import subprocess
    import sys

    probe = ("import sys, io, contextlib, nasir.cli\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    assert nasir.cli.main(['stats', 'resnet20']) == 0\n"
             "print(sorted(m for m in ('torch', 'networkx', 'lark') if m in sys.modules))\n")
    env = {**os.environ, "NASIR_CACHE_DIR": str(tmp_path / "fresh")}
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env=env)
    second = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=env)
    assert first.stdout.strip() == "['lark']", first.stderr
    assert second.stdout.strip() == "[]", second.stderr


def test_a_cached_parse_equals_a_fresh_one(cache_root: Path) -> None:
    from nasir.parse.astcache import parse_cached
    from nasir.parse.parser import parse_text

    text = (Path(__file__).parents[1] / "specs" / "nasnet.arch").read_text()
    fresh = parse_text(text, "nasnet.arch")
    assert parse_cached(text, "nasnet.arch") == fresh  # parsed and stored
    assert parse_cached(text, "nasnet.arch") == fresh  # read back
    assert len([p for p in cache_root.iterdir() if p.name.startswith("ast-")]) == 1
    assert parse_cached(text, "other.arch").file == "other.arch"  # the name is in the key
