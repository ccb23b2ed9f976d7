"""Writing files so that a reader, a crash or a second writer never sees half of one.

The data goes to a temporary file of its own beside the target (the same folder, so the
rename stays on one file system and is atomic; its own name, so two writers at once
never share one), then `os.replace` moves it over the target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def is_temporary(path: Path) -> bool:
    """True for a temporary sibling that `stage_file` made (a write in progress, or left by a crash)."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


_DEFAULT_MODE = 0o666 & ~_umask()


def stage_file(path: Path, data: bytes, *, fsync: bool = False, mode: int | None = None) -> str:
    """Write `data` to a new temporary file beside `path` and return its name.

    The caller renames it over `path` (or removes it); on failure nothing is left behind.
    `mode` sets the permissions; None gives what a plain open() would (0666 less the umask),
    not mkstemp's owner-only 0600: these are papers, pages and previews, not secrets.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, _DEFAULT_MODE if mode is None else mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def replace_file(path: Path, data: bytes, *, fsync: bool = False, mode: int | None = None) -> None:
    """Replace `path` with `data` atomically (see `stage_file` for `fsync` and `mode`)."""
    tmp = stage_file(path, data, fsync=fsync, mode=mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
