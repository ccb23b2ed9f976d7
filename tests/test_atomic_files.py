"""The one atomic file writer: whole files or nothing, with ordinary permissions."""

import os
import stat
from pathlib import Path

import pytest

from newsletter.atomic_files import is_temporary, replace_file


def test_replace_file_writes_whole_files_with_ordinary_permissions(tmp_path: Path) -> None:
    target = tmp_path / "paper.md"
    replace_file(target, b"first")
    replace_file(target, b"second")
    assert target.read_bytes() == b"second"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["paper.md"]


def test_a_failed_write_leaves_neither_a_temporary_nor_a_changed_target(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        replace_file(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert not [p for p in tmp_path.iterdir() if is_temporary(p)]
