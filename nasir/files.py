"""Writing output files safely: all or nothing, never through a planted link, never over a
user's file unless asked.

`write_atomic` writes into a temporary file that it creates itself, exclusively (O_CREAT |
O_EXCL, an unpredictable name, the target's own directory: `tempfile.mkstemp`), fsyncs it and
only then puts it in place, so a reader sees the old file or the whole new one, never a part,
and a crash or a full disk leaves the target as it was. The target is inspected with lstat,
never through a symlink: `--force` replaces a regular file and nothing else. Every failure is
a `SpecError` naming the path and the cause in words, and no temporary file is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile

from nasir.errors import SpecError

_TEMP_SUFFIX = ".nasir-tmp"
_TEMP_NAME_CHARS = 100  # of the target's name kept in the temp name (a long name must still fit)
# errors of os.link that mean "this file system has no hard links": fall back to os.replace
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}

_CAUSES = {
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is too large for the file system",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EISDIR: "it is a directory",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "an input/output error on the device",
}


def write_atomic(path: str | os.PathLike, data: bytes | str, *, force: bool = False) -> None:
    """Write `data` (a str is written as UTF-8) to `path`, all or nothing.

    Without `force` an existing path of any kind (a dangling symlink too) is an error; with
    `force` only a regular file is replaced. Raises SpecError on every failure.
    """
    target = os.fsdecode(os.fspath(path))
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    name = os.path.basename(target)
    if not name or name in (".", ".."):
        raise SpecError(f"cannot write '{target}': it names a directory, not a file",
                        expected="an output file path, e.g. out/model.py")
    directory = os.path.dirname(target) or "."
    old_mode = _check_target(target, force)
    _check_directory(target, directory)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{name[:_TEMP_NAME_CHARS]}.", suffix=_TEMP_SUFFIX,
                                    dir=directory)
    except OSError as err:
        raise _failure(target, err, f"cannot create a file in {directory}") from None
    try:
        try:
            os.fchmod(fd, old_mode if old_mode is not None else 0o666 & ~_umask())
            _write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        _install(temp, target, force)
    except OSError as err:
        raise _failure(target, err) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)  # after _install: a hard link's second name, or nothing
    _fsync_directory(directory)


def _check_target(target: str, force: bool) -> int | None:
    """Refuse an existing target unless forced, and anything but a regular file even then.
    Returns the permission bits of a regular file that will be replaced."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ENOENT:
            return None
        raise _failure(target, err) from None
    if stat.S_ISREG(info.st_mode):
        if not force:
            raise SpecError(f"{target} exists", expected="a new path, or --force to overwrite it")
        return stat.S_IMODE(info.st_mode)
    kind = _kind(info.st_mode)
    raise SpecError(f"cannot write {target}: it is {kind}, and only a regular file is ever "
                    "replaced (--force included)",
                    expected="a new path, or the path of a regular file with --force")


def _check_directory(target: str, directory: str) -> None:
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        raise SpecError(f"cannot write {target}: directory {directory} does not exist",
                        expected="an existing directory (create it first)") from None
    except OSError as err:
        raise _failure(target, err) from None
    if not stat.S_ISDIR(info.st_mode):
        raise SpecError(f"cannot write {target}: {directory} is not a directory",
                        expected="an output path inside an existing directory")


def _install(temp: str, target: str, force: bool) -> None:
    """Put the finished temp file at `target`. Without force a hard link does it, which fails
    if anything appeared at `target` meanwhile, instead of replacing it."""
    if force:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)
    except FileExistsError:
        raise SpecError(f"{target} exists",
                        expected="a new path, or --force to overwrite it") from None
    except OSError as err:
        if err.errno not in _NO_HARD_LINKS:
            raise
        _check_target(target, force=False)
        os.replace(temp, target)


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable; best effort (not every platform can open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (Linux)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _failure(target: str, err: OSError, doing: str = "") -> SpecError:
    cause = _CAUSES.get(err.errno or 0) or err.strerror or str(err)
    return SpecError(f"cannot write {target}: {doing + ': ' if doing else ''}{cause}",
                     expected="a writable output path in an existing directory")
