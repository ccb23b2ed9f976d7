"""`newsletter db`: bring the database's schema up to date, or copy the list and ledger to another database."""

from __future__ import annotations

import click

from newsletter.cli import Context, pass_context


@click.group()
def db() -> None:
    """The database that holds the list, the events and the delivery ledger.

    \b
    database.url in newsletter.toml (or NEWSLETTER_DATABASE_URL) names it: a SQLite
    file (the default) or a PostgreSQL server, postgresql://user:password@host/name.

    \b
    Example:
        newsletter db migrate
    """


@db.command()
@pass_context
def migrate(obj: Context) -> None:
    """Create the database's tables, or bring an older database up to this version's schema.

    Every command does this when it opens the database; run it on its own to prepare a
    new server, or to upgrade a shared database once before the senders start.

    \b
    Example:
        NEWSLETTER_DATABASE_URL=postgresql://newsletter@db.example.org/newsletter newsletter db migrate
    """
    from newsletter.store import Store

    with Store.open(obj.settings.database_url) as store:
        where, was, now = store.db.where, store.schema_was, store.schema_version
    if was == now:
        click.echo(f"{where}: schema version {now}, up to date")
    else:
        click.echo(f"{where}: schema version {was} → {now}")


@db.command()
@click.option("--to", "target", required=True, metavar="URL", help="The empty database to copy into.")
@pass_context
def copy(obj: Context, target: str) -> None:
    """Copy the whole list, events and delivery ledger into another, empty database.

    For moving a SQLite list to PostgreSQL when senders on several machines should share
    it. The target must be empty (nothing is merged); the copy is one transaction and is
    checked by counting each table's rows on both sides. Afterwards point database.url
    (or NEWSLETTER_DATABASE_URL) at the target.

    \b
    Example:
        newsletter db copy --to postgresql://newsletter@db.example.org/newsletter
    """
    from newsletter.store import Store
    from newsletter.store.engine import parse_url

    with Store.open(obj.settings.database_url) as store:
        counts = store.copy_to(target)
        source = store.db.where
    shown = parse_url(target).render_as_string(hide_password=True)
    click.echo(f"copied {source} → {shown}")
    for table, n in counts.items():
        click.echo(f"  {table:<14} {n:>9} rows (same count on both sides)")
