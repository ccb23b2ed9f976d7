"""`newsletter archive`: build the static archive site, preview it, publish it to S3."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from newsletter.cli import Context, pass_context
from newsletter.cli.listen import listen_options, open_server

OUT_OPTION = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The site folder (default: paths.site in newsletter.toml, usually site/).",
)


@click.group()
def archive() -> None:
    """Build, preview and publish the archive site (published issues only)."""


@archive.command()
@OUT_OPTION
@click.option("--verbose", "-v", is_flag=True, help="List every file written or removed.")
@pass_context
def build(obj: Context, out: Path | None, verbose: bool) -> None:
    """Build the archive site: pages, feeds, sitemap; writes only what changed.

    Reads only the paper and issue files changed since the last build (the rest come
    from build/cache/). Feeds carry the newest archive.feed_size issues (default 20);
    older ones are in archived feed pages under feeds/archive/.
    Prints one summary line; --verbose lists the files too. Under a sub-path
    (base_url https://example.org/digest/) crawlers ignore the site's robots.txt:
    add its Sitemap line to the host's own /robots.txt.

    \b
    Example:
        newsletter archive build --out site/
    """
    # each command imports what it runs: `build` is run after every edit, and the
    # publishing and serving code (with http.server) would only slow it down
    from newsletter.archive.rebuild import build_archive

    settings = obj.settings
    target = out or settings.site_dir
    # the content cache and the site's index: a rebuild parses only the paper and issue files
    # changed since the last one, and keys only the pages that show them
    report = build_archive(settings, target)
    if verbose:
        for path in report.written:
            click.echo(f"wrote      {path}")
        for path in report.removed:
            click.echo(f"removed    {path}")
    click.echo(
        f"{target}: {len(report.written)} written, {report.unchanged} unchanged, {len(report.removed)} removed"
    )


@archive.command()
@click.option("--bucket", required=True, metavar="NAME", help="The S3 bucket to publish to.")
@click.option("--prefix", default="", metavar="P", help="Publish under this key prefix (a sub-folder).")
@click.option(
    "--delete",
    is_flag=True,
    help="Delete objects an earlier publish put under the prefix that the site no longer has.",
)
@click.option(
    "--yes-delete-foreign",
    is_flag=True,
    help="With --delete, also delete every object under the prefix no publish of this site made.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be uploaded and deleted; change nothing.")
@click.option("--verbose", "-v", is_flag=True, help="List every uploaded file (deletions are always listed).")
@click.option(
    "--endpoint-url",
    metavar="URL",
    envvar="NEWSLETTER_S3_ENDPOINT_URL",
    help="An S3-compatible endpoint (env NEWSLETTER_S3_ENDPOINT_URL).",
)
@OUT_OPTION
@pass_context
def publish(
    obj: Context,
    bucket: str,
    prefix: str,
    delete: bool,
    yes_delete_foreign: bool,
    dry_run: bool,
    verbose: bool,
    endpoint_url: str | None,
    out: Path | None,
) -> None:
    """Upload the built site to S3: only changed files, with Content-Type and Cache-Control.

    Only the files the build made are uploaded (never dot-files or symlinks). Each
    publish records its keys in .newsletter-published.json under the prefix; --delete
    removes only keys recorded there, and with an empty prefix refuses a bucket that
    holds anything else unless --yes-delete-foreign is given.
    AWS credentials come from the usual places (environment, ~/.aws, instance role).
    Prints a summary line; deletions, and with --verbose or --dry-run the uploads, one per line.

    \b
    Example:
        newsletter archive publish --bucket digest.example.org --delete
    """
    from newsletter.archive.publish import publish_site
    from newsletter.content.freeze import freeze_path, freeze_published
    from newsletter.content.library import load_library
    from newsletter.content.selection import plan

    site_dir = out or obj.settings.site_dir
    if yes_delete_foreign and not delete:
        raise click.UsageError("--yes-delete-foreign: expected together with --delete")
    report = publish_site(
        site_dir,
        bucket,
        prefix=prefix,
        delete=delete,
        delete_foreign=yes_delete_foreign,
        dry_run=dry_run,
        endpoint_url=endpoint_url,
    )
    verb = "would " if dry_run else ""
    if verbose or dry_run:
        for key in report.uploaded:
            click.echo(f"{verb}upload     s3://{bucket}/{key}")
    for key in report.deleted:
        click.echo(f"{verb}delete     s3://{bucket}/{key}")
    if report.stale:
        click.echo(
            f"{len(report.stale)} object(s) under s3://{bucket}/{report.prefix} are not in the site (kept; use --delete)"
        )
    if report.foreign:
        click.echo(
            f"{len(report.foreign)} object(s) under s3://{bucket}/{report.prefix} were not published from here (kept)"
        )
    where = f"s3://{bucket}/{report.prefix}"
    if dry_run:
        click.echo(
            f"{where}: {len(report.uploaded)} to upload, {len(report.unchanged)} unchanged, "
            f"{len(report.deleted)} to delete (dry run: nothing changed)"
        )
    else:
        click.echo(
            f"{where}: {len(report.uploaded)} uploaded, {len(report.unchanged)} unchanged, "
            f"{len(report.deleted)} deleted"
        )
        # Public now: a published issue never sent keeps these papers from here on.
        library = load_library(obj.settings)
        for issue in freeze_published(library.issues, plan(library), dt.datetime.now(dt.UTC)):
            click.echo(f"froze      {freeze_path(issue.path).name} (published; commit it)")


@archive.command()
@listen_options
@OUT_OPTION
@pass_context
def serve(obj: Context, host: str, port: int, out: Path | None) -> None:
    """Preview the built site over HTTP (folders serve index.html; misses serve 404.html).

    \b
    Example:
        newsletter archive serve --port 8000
    """
    from newsletter.archive.server import site_server

    server = open_server(lambda h, p: site_server(out or obj.settings.site_dir, h, p), host, port)
    host, real_port = server.server_address[:2]
    click.echo(f"Serving {out or obj.settings.site_dir} at http://{host}:{real_port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
