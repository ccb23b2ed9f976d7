"""`newsletter subscribers`: add, remove, unsubscribe, set-status, tag, history, list, export, import, stats, purge-pending."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from newsletter.audience.lifecycle import STATUSES, change_status
from newsletter.cli import Context, pass_context

if TYPE_CHECKING:
    from newsletter.store import Store, Subscriber

EXPORT_COLUMNS = (
    "email",
    "name",
    "language",
    "status",
    "consent_at",
    "source",
    "created_at",
    "tags",
    "attributes",
)


@contextmanager
def _open_store(obj: Context) -> Iterator[Store]:
    from newsletter.store import Store

    with Store.open(obj.settings.database_url) as store:
        yield store


@click.group()
def subscribers() -> None:
    """Manage the subscriber list (subscribers/subscribers.db by default).

    \b
    Example:
        newsletter subscribers import subscribers/sample.csv
    """


@subscribers.command()
@click.argument("email")
@click.option("--name", help="The subscriber's name, used in greetings.")
@click.option("--language", help="Preferred language tag, e.g. 'en', 'ar', 'pt-BR'.")
@click.option("--status", type=click.Choice(STATUSES), default="active", show_default=True)
@pass_context
def add(obj: Context, email: str, name: str | None, language: str | None, status: str) -> None:
    """Add one subscriber (confirmed consent is assumed for 'active').

    \b
    Example:
        newsletter subscribers add ana@example.com --name "Ana" --language pt-BR
    """
    from newsletter.audience.imports import normalize_email, parse_language
    from newsletter.errors import NewsletterError

    try:
        address = normalize_email(email)
    except ValueError as exc:
        raise NewsletterError(f"EMAIL: expected a usable email address, got {email!r}: {exc}") from None
    if language is not None:
        parsed = parse_language(language)
        if parsed is None:
            raise NewsletterError(
                f"--language: expected a language tag like 'en' or 'pt-BR', got {language!r}"
            )
        language = parsed
    with _open_store(obj) as store:
        subscriber = store.add_subscriber(address, name=name, language=language, status=status, source="cli")
    click.echo(f"Added {subscriber.email} ({subscriber.status}).")


@subscribers.command()
@click.argument("email")
@pass_context
def remove(obj: Context, email: str) -> None:
    """Delete a subscriber and erase the address from delivery records (GDPR erasure).

    To stop mail but remember the opt-out, use `unsubscribe` instead: a removed
    address can be imported or added again.

    \b
    Example:
        newsletter subscribers remove ana@example.com
    """
    with _open_store(obj) as store:
        if not store.remove_subscriber(email):
            _no_such(email)
    click.echo(f"Removed {email}; its delivery records and events are anonymised.")


@subscribers.command()
@click.argument("email")
@pass_context
def unsubscribe(obj: Context, email: str) -> None:
    """Unsubscribe an address: it never receives mail again, even if imported again.

    \b
    Example:
        newsletter subscribers unsubscribe ana@example.com
    """
    with _open_store(obj) as store:
        subscriber = store.get_subscriber(email)
        if subscriber is None:
            _no_such(email)
        change = change_status(store, subscriber.id, "unsubscribed", "editor", reason="cli", by=_user(None))
    address = subscriber.email
    if change is None:  # removed meanwhile
        _no_such(email)
    if change.changed:
        click.echo(f"Unsubscribed {address} (was {change.current}).")
    elif change.reason:
        click.echo(f"{address} stays {change.current}: {change.reason}.")
    else:
        click.echo(f"{address} is already unsubscribed.")


@subscribers.command("set-status")
@click.argument("email")
@click.argument("status", type=click.Choice(STATUSES))
@click.option(
    "--force-resubscribe",
    is_flag=True,
    help="Allow bringing back an address that unsubscribed, bounced or complained.",
)
@click.option("--by", "by", metavar="NAME", help="Who asks, for the record [default: your user name].")
@pass_context
def set_status(obj: Context, email: str, status: str, force_resubscribe: bool, by: str | None) -> None:
    """Set a subscriber's status, following the same rules as every other change.

    Someone who unsubscribed, bounced or complained comes back only with
    --force-resubscribe; the change is recorded with who asked and when.

    \b
    Example:
        newsletter subscribers set-status ana@example.com active --force-resubscribe --by "Ana's editor"
    """
    from newsletter.errors import NewsletterError

    who = _user(by)
    reason = "cli set-status" + (" --force-resubscribe" if force_resubscribe else "")
    with _open_store(obj) as store:
        subscriber = store.get_subscriber(email)
        if subscriber is None:
            _no_such(email)
        change = change_status(
            store, subscriber.id, status, "editor", reason=reason, force=force_resubscribe, by=who
        )
    address = subscriber.email
    if change is None:  # removed meanwhile
        _no_such(email)
    if change.changed:
        click.echo(f"{address}: {change.current} -> {change.status} (by {who}).")
    elif change.reason:
        raise NewsletterError(
            f"{address}: expected a move to {status}, got a refusal: it is {change.current}, and "
            f"{change.reason}\n\nTo bring the address back anyway, add --force-resubscribe."
        )
    else:
        click.echo(f"{address} is already {status}.")


@subscribers.command()
@click.argument("emails", metavar="EMAIL...", nargs=-1, required=True)
@click.option("--add", "add_tags", multiple=True, metavar="TAG", help="Add this tag (repeatable).")
@click.option("--remove", "remove_tags", multiple=True, metavar="TAG", help="Remove this tag (repeatable).")
@pass_context
def tag(
    obj: Context, emails: tuple[str, ...], add_tags: tuple[str, ...], remove_tags: tuple[str, ...]
) -> None:
    """Add or remove tags of one or more subscribers; an issue's `audience: {tags: [...]}` selects by them.

    Tags are stored lowercase with single spaces, and hold no commas. Every address
    must be on the list, or nothing changes.

    \b
    Example:
        newsletter subscribers tag ana@example.com omar@example.com --add beta --remove trial
    """
    from newsletter.errors import NewsletterError
    from newsletter.text import fold_tag

    if not add_tags and not remove_tags:
        raise NewsletterError("tag: expected --add TAG or --remove TAG, got neither")
    for option, values in (("--add", add_tags), ("--remove", remove_tags)):
        for value in values:
            try:
                fold_tag(value)
            except ValueError as exc:
                raise NewsletterError(f"{option}: {exc}") from None
    with _open_store(obj) as store:
        missing = [e for e in emails if store.get_subscriber(e) is None]
        if missing:
            _no_such(missing[0])
        result = store.tag_subscribers(emails, add=add_tags, remove=remove_tags)
    for email in emails:
        tags = result.get(email)
        if tags is None:  # removed meanwhile
            _no_such(email)
        click.echo(f"{email}: {', '.join(tags) or 'no tags'}")


@subscribers.command()
@click.argument("email")
@pass_context
def history(obj: Context, email: str) -> None:
    """Show what happened to an address: status changes (with who asked) and SES events, oldest first.

    \b
    Example:
        newsletter subscribers history ana@example.com
    """
    with _open_store(obj) as store:
        if store.get_subscriber(email) is None:
            _no_such(email)
        recorded = store.list_events(email=email)
    for event in recorded:
        when = event["received_at"].isoformat(timespec="seconds")
        detail = event["detail"] or {}
        if event["type"] == "status":
            by = f", by {detail['by']}" if detail.get("by") else ""
            why = f" ({detail.get('reason') or 'no reason given'}{by})"
            click.echo(f"{when}  status  {detail.get('from')} -> {detail.get('to')}{why}")
        else:
            click.echo(f"{when}  {event['type']}  {event['message_id'] or '-'}")


def _user(by: str | None) -> str:
    """Who runs the command: `--by`, else the operating system's user name."""
    if by:
        return by
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name (a container without /etc/passwd entry)
        return "unknown"


@subscribers.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only subscribers with this status.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of subscriber objects.")
@pass_context
def list_(obj: Context, status: str | None, as_json: bool) -> None:
    """List subscribers: address, status, language, name and tags, one per line.

    \b
    Example:
        newsletter subscribers list --status active --json
    """
    with _open_store(obj) as store:
        rows = store.iter_subscribers(status=status)
        if as_json:
            # written item by item so a large list is never held in memory
            click.echo("[", nl=False)
            for n, subscriber in enumerate(rows):
                text = json.dumps(_as_dict(subscriber), ensure_ascii=False)
                click.echo(("," if n else "") + "\n  " + text, nl=False)
            click.echo("\n]")
            return
        for subscriber in rows:
            fields = (
                subscriber.email,
                subscriber.status,
                subscriber.language or "-",
                subscriber.name or "",
                ",".join(subscriber.tags),
            )
            click.echo("\t".join(fields).rstrip("\t"))


@subscribers.command()
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("--status", type=click.Choice(STATUSES), help="Only subscribers with this status.")
@pass_context
def export(obj: Context, file: str, status: str | None) -> None:
    """Write subscribers as CSV (UTF-8) to FILE, or to standard output with '-'.

    The file can be imported again: statuses, names, languages and tags survive.

    \b
    Example:
        newsletter subscribers export --status active backup.csv
    """
    with _open_store(obj) as store, click.open_file(file, "w", encoding="utf-8", atomic=file != "-") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        count = 0
        for subscriber in store.iter_subscribers(status=status):
            row = _as_dict(subscriber)
            row["attributes"] = json.dumps(row["attributes"], ensure_ascii=False) if row["attributes"] else ""
            row["tags"] = ",".join(row["tags"])
            writer.writerow(["" if row[c] is None else row[c] for c in EXPORT_COLUMNS])
            count += 1
    if file != "-":
        click.echo(f"Exported {count} subscribers to {file}.", err=True)


@subscribers.command()
@pass_context
def stats(obj: Context) -> None:
    """Count subscribers by status.

    \b
    Example:
        newsletter subscribers stats
    """
    with _open_store(obj) as store:
        counts = store.count_by_status()
    width = max(len(s) for s in counts)
    for status, n in counts.items():
        click.echo(f"{status:<{width}}  {n:>7}")
    click.echo(f"{'total':<{width}}  {sum(counts.values()):>7}")


@subscribers.command("purge-pending")
@click.option(
    "--older-than",
    "hours",
    type=click.IntRange(1, None),
    default=None,
    metavar="HOURS",
    help="Erase web sign-ups still pending after this many hours (default: the confirmation link's lifetime).",
)
@pass_context
def purge_pending(obj: Context, hours: int | None) -> None:
    """Erase subscribe requests from the web that were never confirmed.

    An unconfirmed request is not consent, and the address may be someone else's;
    `newsletter serve` runs this every hour by itself. Imported pending rows stay.

    \b
    Example:
        newsletter subscribers purge-pending --older-than 168
    """
    from datetime import UTC, datetime, timedelta

    from newsletter.web.confirmation import CONFIRM_TTL

    age = timedelta(hours=hours) if hours else timedelta(seconds=CONFIRM_TTL)
    with _open_store(obj) as store:
        erased = store.purge_pending(datetime.now(UTC) - age)
    click.echo(f"{len(erased)} pending sign-up(s) older than {age.total_seconds() / 3600:g} hours erased.")


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Refuse the whole file (write nothing) if any row is refused.")
@click.option("--check-dns", is_flag=True, help="Also check that each domain accepts mail (DNS; slow).")
@click.option(
    "--format",
    "format_",
    metavar="NAME",
    help="The platform the file comes from (mailchimp, substack, buttondown, ghost, kit, beehiiv, "
    "listmonk, generic); recognised from the header when not given.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the format, its status mapping and counts per status; write nothing.",
)
@pass_context
def import_(
    obj: Context, file: Path, strict: bool, check_dns: bool, format_: str | None, dry_run: bool
) -> None:
    """Merge subscribers from a CSV file: ours, or an export of Mailchimp, Substack,
    Buttondown, Ghost, Kit, beehiiv or listmonk.

    The platform is recognised from the header (and Mailchimp's file name); --format
    overrides it. Each platform's statuses map onto ours by the table in the README;
    every opt-out (status, flag, unsubscribe date, blocklist, cleaned or bounced) wins
    over active, and a status the table does not know refuses the row. Rows without
    a status become active. Unsubscribed, bounced and complained addresses are never
    re-activated. Bad rows are refused with their line number; the others are
    imported (unless --strict). --dry-run shows what would happen and writes nothing.

    \b
    Example:
        newsletter subscribers import members_export/cleaned_members_export_ef3462e259.csv --dry-run
    """
    from newsletter.audience.imports import import_csv, plan_import

    if dry_run:
        plan = plan_import(file, format=format_, check_dns=check_dns)
        _show_plan(plan)
        return
    with _open_store(obj) as store, _progress() as progress:
        report = import_csv(
            store, file, strict=strict, check_dns=check_dns, progress=progress, format=format_
        )
    click.echo(f"format: {report.format}")
    for refusal in report.refused:
        click.echo(f"refused    {file}:{refusal.line}: {refusal.reason}")
    click.echo(report.summary())


def _show_plan(plan: Any) -> None:
    platform = plan.platform
    click.echo(f"format: {platform.name} ({platform.title})")
    if plan.file_status:
        click.echo(f"status from the file name: every row is {plan.file_status}")
    elif plan.status_column:
        click.echo(f"status column: {plan.status_column!r}")
        for word, status in platform.statuses.items():
            click.echo(f"  {word:<16} -> {status}")
    else:
        click.echo("status column: none (rows are active unless an opt-out column says otherwise)")
    for signal in plan.signals:
        click.echo(f"opt-out column: {signal.replace('`', '')}")
    for refusal in plan.refused:
        click.echo(f"refused    {plan.path}:{refusal.line}: {refusal.reason}")
    counts = ", ".join(f"{n} {status}" for status, n in sorted(plan.statuses.items()))
    click.echo(
        f"{plan.rows} rows: {counts or 'none usable'}, {len(plan.refused)} refused (dry run: nothing written)"
    )


@contextmanager
def _progress() -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal; otherwise nothing."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("importing", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _as_dict(subscriber: Subscriber) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return None if value is None else value.isoformat(timespec="seconds")

    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "language": subscriber.language,
        "status": subscriber.status,
        "source": subscriber.source,
        "consent_at": iso(subscriber.consent_at),
        "created_at": iso(subscriber.created_at),
        "unsubscribed_at": iso(subscriber.unsubscribed_at),
        "soft_bounces": subscriber.soft_bounces,
        "tags": list(subscriber.tags),
        "attributes": subscriber.attributes,
    }


def _no_such(email: str) -> None:
    from newsletter.errors import NewsletterError

    raise NewsletterError(
        f"EMAIL: no subscriber {email!r}\n\nSee the list with `newsletter subscribers list`."
    )
