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


def stage_file(path: Path, data: bytes, *, fsync: bool = False, mode: int | None = None) -> str:
    """Write `data` to a new temporary file beside `path` and return its name.

    The caller renames it over `path` (or removes it); on failure nothing is left behind.
    `mode` sets the permissions; None keeps mkstemp's owner-only 0600.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
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
