"""The `newsletter` command: a click group whose commands live in sibling modules.

Commands are imported only when invoked, so `newsletter --help` starts fast and a
broken optional dependency cannot stop unrelated commands.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from newsletter import __version__

# command name -> "module:attribute" inside newsletter.cli
COMMANDS = {
    "init": "project:init",
    "build": "content:build",
    "check": "content:check",
    "preview": "preview:preview",
    "papers": "papers:papers",
    "issue": "content:issue",
    "issues": "issues:issues",
    "report": "report:report",
    "subscribers": "subscribers:subscribers",
    "send": "send:send",
    "status": "send:status",
    "archive": "archive:archive",
    "serve": "serve:serve",
    "events": "events:events",
    "demo": "project:demo",
    "digest": "digest:digest",
    "i18n": "i18n:i18n",
    "db": "db:db",
}


class LazyGroup(click.Group):
    def main(self, *args, **kwargs):
        """Run the CLI; a usage mistake exits 1 like every other user error (click says 2)."""
        try:
            return super().main(*args, **kwargs)
        except SystemExit as exc:
            if exc.code == click.UsageError.exit_code:
                raise SystemExit(1) from None
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    envvar="NEWSLETTER_ROOT",
    show_default=True,
    help="The newsletter folder (holds newsletter.toml).",
)
@click.version_option(__version__, prog_name="newsletter")
@click.pass_context
def main(ctx: click.Context, root: Path) -> None:
    """Curate, render, send and archive research-paper digests.

    \b
    A newsletter folder holds newsletter.toml, papers/, issues/, templates/ and
    subscribers/. Start with `newsletter init DIR` or run inside this repository.

    \b
    Example:
        newsletter build 2026-03-17-multilingual-llms
    """
    ctx.obj = Context(root)


class Context:
    """What every command needs: the newsletter folder, its settings loaded once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._settings = None

    @property
    def settings(self):
        if self._settings is None:
            from newsletter.config import load_settings

            self._settings = load_settings(self.root)
        return self._settings


pass_context = click.make_pass_decorator(Context)


def display_path(path: Path) -> str:
    """`path` as a user would type it here: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
