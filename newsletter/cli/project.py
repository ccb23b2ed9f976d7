"""Commands for a whole newsletter folder: init and the demo."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="Paper Digest", show_default=True, help="The newsletter's name.")
def init(directory: Path, name: str) -> None:
    """Create a new newsletter in DIRECTORY: settings, templates, an example paper and issue.

    DIRECTORY must not exist or be empty. Edit newsletter.toml first.

    \b
    Example:
        newsletter init my-digest --name "Speech Papers Weekly"
    """
    if directory.exists() and any(directory.iterdir()):
        raise click.ClickException(f"{directory}: expected an empty or new folder, found files in it")
    scaffold = resources.files("newsletter") / "scaffold"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "digest"
    created = []
    directory.mkdir(parents=True, exist_ok=True)
    with resources.as_file(scaffold) as source:
        shutil.copytree(source / "templates", directory / "templates")
        for sub in ("papers", "issues"):
            (directory / sub).mkdir()
            for item in sorted((source / sub).iterdir()):
                text = item.read_text(encoding="utf-8").replace("{name}", name)
                (directory / sub / item.name).write_text(text, encoding="utf-8")
                created.append(f"{sub}/{item.name}")
        settings = (source / "newsletter.toml").read_text(encoding="utf-8")
        settings = settings.replace("{name}", name.replace('"', "'")).replace(
            "{list_id}", f"{slug}.example.org"
        )
        (directory / "newsletter.toml").write_text(settings, encoding="utf-8")
    (directory / "subscribers").mkdir()
    (directory / ".gitignore").write_text(
        "/build/\n/site/\n/outbox/\nsubscribers/*.db\nsubscribers/*.db-*\n", encoding="utf-8"
    )
    click.echo(f"Created a newsletter in {directory}/")
    for path in ["newsletter.toml", "templates/", *created, "subscribers/"]:
        click.echo(f"  {path}")
    click.echo(f"\nNext: edit {directory}/newsletter.toml, then `newsletter --root {directory} build --all`.")
