"""The archive tests' view of a built site: its files, and what a CLI build wrote."""

from __future__ import annotations

import shutil
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


def example_newsletter(dest: Path) -> Path:
    """A copy of the repository's example newsletter (an issue in English, Arabic and German) at `dest`."""
    from tests.support.project import REPO, TEMPLATES

    dest.mkdir(parents=True)
    for name in ("papers", "issues"):
        shutil.copytree(REPO / name, dest / name)
    toml = (REPO / "newsletter.toml").read_text(encoding="utf-8")
    (dest / "newsletter.toml").write_text(
        toml + f'\n[paths]\ntemplates = "{TEMPLATES.as_posix()}"\n', encoding="utf-8"
    )
    return dest
