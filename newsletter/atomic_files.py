"""Writing files so that a reader, a crash or a second writer never sees half of one.

The data goes to a temporary file of its own beside the target (the same folder, so the
rename stays on one file system and is atomic; its own name, so two writers at once
never share one), then `os.replace` moves it over the target.

The temporary file is made with one `os.open(O_CREAT | O_EXCL)`: its name (this
process's id and a counter) is unique among writers, and O_EXCL makes sure of it even
against a file a crashed writer left. That is mkstemp's guarantee without its random
names, retries and chmod by path, which cost more than the write itself when a build writes
tens of thousands of small pages.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

TEMP_SUFFIX = ".tmp"

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_names = itertools.count()  # next() on it is atomic under the GIL: threads never share a name


def is_temporary(path: Path) -> bool:
    """True for a temporary sibling that `stage_file` made (a write in progress, or left by a crash)."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def stage_file(path: Path | str, data: bytes, *, fsync: bool = False, mode: int | None = None) -> str:
    """Write `data` to a new temporary file beside `path` and return its name.

    The caller renames it over `path` (or removes it); on failure nothing is left behind.
    `mode` sets the permissions; None gives what a plain open() would (0666 less the umask):
    these are papers, pages and previews, not secrets.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes to write to {path}, got {type(data).__name__}")
    folder, name = os.path.split(os.fspath(path))
    pid = os.getpid()
    while True:
        tmp = os.path.join(folder, f".{name}.{pid}-{next(_names)}{TEMP_SUFFIX}")
        try:
            fd = os.open(tmp, _FLAGS, 0o666 if mode is None else mode)
        except FileExistsError:  # left by a crashed writer that had this process id
            continue
        break
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if mode is not None:
                os.fchmod(fd, mode)  # exactly these bits, whatever the umask took away
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def replace_file(path: Path | str, data: bytes, *, fsync: bool = False, mode: int | None = None) -> None:
    """Replace `path` with `data` atomically (see `stage_file` for `fsync` and `mode`)."""
    tmp = stage_file(path, data, fsync=fsync, mode=mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
