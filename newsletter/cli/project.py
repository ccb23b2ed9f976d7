"""Commands for a whole newsletter folder: init and the demo."""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path

import click

from newsletter.cli import Context, display_path, pass_context


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
    # The name goes inside double-quoted strings of TOML and YAML; JSON's escapes suit both.
    quoted_name = json.dumps(name, ensure_ascii=False)[1:-1]
    created = []
    directory.mkdir(parents=True, exist_ok=True)
    with resources.as_file(scaffold) as source:
        shutil.copytree(source / "templates", directory / "templates")
        for sub in ("papers", "issues"):
            (directory / sub).mkdir()
            for item in sorted((source / sub).iterdir()):
                text = item.read_text(encoding="utf-8").replace("{name}", quoted_name)
                (directory / sub / item.name).write_text(text, encoding="utf-8")
                created.append(f"{sub}/{item.name}")
        settings = (source / "newsletter.toml").read_text(encoding="utf-8")
        settings = settings.replace("{name}", quoted_name).replace("{list_id}", f"{slug}.example.org")
        (directory / "newsletter.toml").write_text(settings, encoding="utf-8")
    (directory / "subscribers").mkdir()
    (directory / ".gitignore").write_text(
        "/build/\n/site/\n/outbox/\nsubscribers/*.db\nsubscribers/*.db-*\n", encoding="utf-8"
    )
    click.echo(f"Created a newsletter in {directory}/")
    for path in ["newsletter.toml", "templates/", *created, "subscribers/"]:
        click.echo(f"  {path}")
    click.echo(f"\nNext: edit {directory}/newsletter.toml, then `newsletter --root {directory} build --all`.")


def _languages_sent(database_url: str, issue: str) -> str:
    """'Readers by language: ar 2 (ar, ar-EG), …' — which translation the sent messages were in."""
    from newsletter.store import Store

    readers: dict[str, list[str]] = {}
    with Store.open(database_url) as store:
        for row in store.ledger(issue):
            if row.state == "sent" and row.sent_language:
                readers.setdefault(row.sent_language, []).append(row.language or "no language")
    if not readers:
        return f"Readers by language: none of {issue}'s messages records its language."
    parts = [
        f"{language} {len(tags)} ({', '.join(sorted(set(tags)))})"
        for language, tags in sorted(readers.items())
    ]
    return f"Readers by language (the translation they got, and their own languages): {'; '.join(parts)}."


@click.command()
@click.option("--issue", "issue_ref", help="The issue to send [default: the first published one].")
@pass_context
def demo(ctx: Context, issue_ref: str | None) -> None:
    """Run the example newsletter end to end on the embedded defaults.

    Builds every issue into build/, checks them, imports subscribers/sample.csv
    into the SQLite list, sends the first published issue through the `file`
    transport into outbox/ (one .eml per reader, each in the reader's language when
    the issue has that translation), and builds the archive in site/. Safe to run
    again: a finished send sends nothing twice.

    \b
    Example:
        newsletter demo
    """
    from newsletter.cli.archive import build as archive_build
    from newsletter.cli.content import build, check
    from newsletter.cli.send import send, status
    from newsletter.cli.subscribers import import_ as subscribers_import
    from newsletter.content.library import load_library

    click.get_current_context().obj = ctx
    settings = ctx.settings
    library = load_library(settings)
    published = [i for i in library.issues if i.published]
    if issue_ref is None and not published:
        raise click.ClickException("no published issue to send: set 'status: published' in an issue")
    target = issue_ref or published[0].slug
    sample = settings.root / "subscribers" / "sample.csv"

    steps = [
        ("Build every issue", build, {"issues": (), "all_issues": True}),
        ("Check every issue", check, {"issues": (), "all_issues": True}),
        ("Import the sample subscribers", subscribers_import, {"file": sample}),
        (f"Send {target} to the outbox", send, {"issue_ref": target, "transport_name": "file", "yes": True}),
        ("Ledger", status, {"issue_ref": target}),
        ("Build the archive", archive_build, {}),
    ]
    for title, command, params in steps:
        click.secho(f"\n== {title}", bold=True)
        click.get_current_context().invoke(command, **params)
    click.echo("\n" + _languages_sent(settings.database_url, target))
    click.echo(
        f"\nDone. Open {display_path(settings.build_dir)}/{target}/email.html, the messages in "
        f"{display_path(settings.outbox_dir)}/{target}/ and {display_path(settings.site_dir)}/index.html, "
        "or run `newsletter archive serve`."
    )
