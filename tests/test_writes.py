"""nasir.files.write_atomic: all-or-nothing output files that never follow a planted link,
never replace anything but a regular file, and leave no temporary file behind on any failure.

Failures of the disk (full, read-only, permission denied) are simulated by patching the os
calls write_atomic makes: these tests run as root, where chmod does not stop a write.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import pytest
from conftest import assert_refused, run_real_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from nasir.cli import main
from nasir.errors import SpecError
from nasir.files import write_atomic


def entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def os_error(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


# ---- what gets written --------------------------------------------------------------------

def test_text_is_written_as_utf8_and_bytes_as_they_are(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.py", "λ = 'ü'\n")
    write_atomic(str(tmp_path / "b.bin"), b"\x00\xff")
    assert (tmp_path / "a.py").read_bytes() == "λ = 'ü'\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert entries(tmp_path) == {"a.py", "b.bin"}


def test_a_new_file_gets_the_permissions_the_umask_allows(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "m.py", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.py").stat().st_mode) == 0o640  # not mkstemp's 0o600


def test_force_replaces_a_regular_file_and_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "m.py"
    target.write_text("old")
    target.chmod(0o604)
    write_atomic(target, "new", force=True)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o604
    assert entries(tmp_path) == {"m.py"}


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=5000) | st.text(max_size=2000))
def test_what_is_read_back_is_what_was_written(data: bytes | str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "out"
        write_atomic(target, data)
        expected = data.encode() if isinstance(data, str) else data
        assert target.read_bytes() == expected
        write_atomic(target, data[::-1], force=True)
        assert target.read_bytes() == (expected.decode()[::-1].encode()
                                       if isinstance(data, str) else expected[::-1])
        assert entries(Path(tmp)) == {"out"}


# ---- what is refused ------------------------------------------------------------------------

def test_an_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    target = tmp_path / "m.py"
    target.write_text("mine")
    with pytest.raises(SpecError) as err:
        write_atomic(target, "theirs")
    assert err.value.message == f"{target} exists"
    assert err.value.expected == "a new path, or --force to overwrite it"
    assert target.read_text() == "mine" and entries(tmp_path) == {"m.py"}


@pytest.mark.parametrize("force", [False, True])
def test_a_symlink_at_the_target_is_never_followed_or_replaced(tmp_path: Path,
                                                               force: bool) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "m.py"
    link.symlink_to(victim)
    with pytest.raises(SpecError, match="symbolic link"):
        write_atomic(link, "payload", force=force)
    assert victim.read_text() == "precious"
    assert link.is_symlink() and os.readlink(link) == str(victim)
    assert entries(tmp_path) == {"victim.txt", "m.py"}


@pytest.mark.parametrize("force", [False, True])
def test_a_dangling_symlink_at_the_target_is_not_written_through(tmp_path: Path,
                                                                 force: bool) -> None:
    link = tmp_path / "m.py"
    link.symlink_to(tmp_path / "created-through-link")
    with pytest.raises(SpecError, match="symbolic link"):
        write_atomic(link, "payload", force=force)
    assert entries(tmp_path) == {"m.py"}


def test_a_symlink_planted_at_the_old_predictable_temp_name_is_harmless(tmp_path: Path) -> None:
    """The former writer used `.NAME.nasir-tmp`; a link planted there redirected the write."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".m.py.nasir-tmp").symlink_to(victim)
    write_atomic(tmp_path / "m.py", "payload")
    assert victim.read_text() == "precious"
    assert (tmp_path / "m.py").read_text() == "payload"
    assert entries(tmp_path) == {"victim.txt", ".m.py.nasir-tmp", "m.py"}


@pytest.mark.parametrize("force", [False, True])
def test_a_directory_is_never_a_target(tmp_path: Path, force: bool) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(SpecError, match="it is a directory"):
        write_atomic(tmp_path / "out", "x", force=force)
    with pytest.raises(SpecError, match="names a directory"):
        write_atomic(f"{tmp_path}/out/", "x", force=force)
    assert entries(tmp_path) == {"out"} and entries(tmp_path / "out") == set()


def test_force_does_not_replace_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(SpecError, match=r"named pipe \(FIFO\)"):
        write_atomic(tmp_path / "pipe", "x", force=True)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode) and entries(tmp_path) == {"pipe"}


def test_a_missing_parent_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        write_atomic(tmp_path / "no" / "m.py", "x")
    assert f"directory {tmp_path / 'no'} does not exist" in err.value.message
    assert entries(tmp_path) == set()


def test_a_file_used_as_a_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SpecError, match="not a directory"):
        write_atomic(tmp_path / "f" / "m.py", "x")
    assert entries(tmp_path) == {"f"}


def test_a_name_too_long_for_the_file_system_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file name is too long"):
        write_atomic(tmp_path / ("a" * 300 + ".py"), "x")
    assert entries(tmp_path) == set()


def test_a_long_name_that_fits_still_gets_a_temp_file_that_fits(tmp_path: Path) -> None:
    name = "b" * 250 + ".py"  # 253 bytes: fits, but ".NAME.<random>.nasir-tmp" would not
    write_atomic(tmp_path / name, "x")
    assert entries(tmp_path) == {name}


# ---- failures of the disk: clean errors, old content kept, no temp file left --------------

FAILURES = [  # (the call that fails, errno, the cause the message must give in words)
    ("write", errno.ENOSPC, "no space left on the device"),
    ("write", errno.EDQUOT, "disk quota is exceeded"),
    ("fsync", errno.EIO, "input/output error"),
    ("mkstemp", errno.EROFS, "file system is read-only"),
    ("mkstemp", errno.EACCES, "permission denied"),
    ("replace", errno.EACCES, "permission denied"),  # putting a file in place: with --force
    ("link", errno.EROFS, "file system is read-only"),  # ... and without
]
CASES = [(*failure, existing) for failure in FAILURES for existing in (False, True)
         if (failure[0], existing) not in {("replace", False), ("link", True)}]


@pytest.mark.parametrize(("call", "code", "cause", "existing"), CASES)
def test_a_failing_disk_gives_a_clean_error_and_leaves_no_trace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str, code: int, cause: str,
        existing: bool) -> None:
    target = tmp_path / "m.py"
    if existing:
        target.write_text("old")
    monkeypatch.setattr(tempfile if call == "mkstemp" else os, call, os_error(code))
    with pytest.raises(SpecError) as err:
        write_atomic(target, "new" * 10_000, force=existing)
    monkeypatch.undo()
    message = err.value.message
    assert message.startswith(f"cannot write {target}: ") and cause in message
    assert "Errno" not in message
    assert entries(tmp_path) == ({"m.py"} if existing else set())
    if existing:
        assert target.read_text() == "old"


def test_a_short_write_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    write_atomic(tmp_path / "m.py", "0123456789" * 5)
    assert (tmp_path / "m.py").read_text() == "0123456789" * 5


def test_an_interrupt_mid_write_removes_the_temp_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "m.py", "x")
    assert entries(tmp_path) == set()


def test_a_file_that_appears_during_the_write_is_not_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --force the check and the final link cannot race: the link refuses."""
    target = tmp_path / "m.py"
    real_fsync = os.fsync

    def someone_else_writes(fd: int) -> None:
        real_fsync(fd)
        if not target.exists():
            target.write_text("theirs")
    monkeypatch.setattr(os, "fsync", someone_else_writes)
    with pytest.raises(SpecError, match="exists"):
        write_atomic(target, "mine")
    assert target.read_text() == "theirs" and entries(tmp_path) == {"m.py"}


def test_a_file_system_without_hard_links_falls_back_to_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "link", os_error(errno.EPERM))
    write_atomic(tmp_path / "m.py", "x")
    assert (tmp_path / "m.py").read_text() == "x" and entries(tmp_path) == {"m.py"}


# ---- through the command line --------------------------------------------------------------

def test_cli_compile_onto_an_existing_file_exits_2_and_keeps_it(tmp_path: Path) -> None:
    target = tmp_path / "m.py"
    target.write_text("mine")
    result = run_real_cli("compile", "resnet20", "-o", str(target), timeout=300,
                          entry_point=True)
    assert_refused(result)
    assert f"error: {target} exists" in result.stderr
    assert target.read_text() == "mine" and entries(tmp_path) == {"m.py"}


def test_cli_render_through_a_symlink_is_refused(tmp_path: Path, capsys) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "g.dot").symlink_to(victim)
    status = main(["render", "resnet20", "-o", str(tmp_path / "g.dot"), "--force"])
    assert status == 2 and "symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "precious" and entries(tmp_path) == {"victim.txt", "g.dot"}
