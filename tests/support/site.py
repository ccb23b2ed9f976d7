"""The archive tests' view of a built site: its files, and what a CLI build wrote."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main


def site_files(out: Path) -> dict[str, bytes]:
    """Every file of a built site, by its '/'-separated path inside it."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def cli_build(root: Path, *args: str) -> list[str]:
    """`newsletter archive build -v`: the files it wrote."""
    result = CliRunner().invoke(main, ["--root", str(root), "archive", "build", "-v", *args])
    assert result.exit_code == 0, result.output
    return sorted(line.split(None, 1)[1] for line in result.output.splitlines() if line.startswith("wrote"))
