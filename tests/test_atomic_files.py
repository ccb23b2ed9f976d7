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


def test_a_temporary_left_by_a_crashed_writer_is_never_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import itertools

    from newsletter import atomic_files

    target = tmp_path / "page.html"
    # what a writer with this process id left when it died at its first name
    left = tmp_path / f".page.html.{os.getpid()}-0.tmp"
    left.write_bytes(b"half a pa")
    monkeypatch.setattr(atomic_files, "_names", itertools.count())
    replace_file(target, b"<p>whole</p>")
    assert target.read_bytes() == b"<p>whole</p>"
    assert left.read_bytes() == b"half a pa"  # not written through, not renamed over the target


def test_an_explicit_mode_holds_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "index.html"
    mask = os.umask(0o077)
    try:
        replace_file(target, b"page", mode=0o644)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_write_failing_halfway_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "feed.xml"
    target.write_bytes(b"old")

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError):
        replace_file(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["feed.xml"]
