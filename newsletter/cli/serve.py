"""`newsletter serve`: the subscribe / confirm / one-click unsubscribe endpoint, on waitress."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import click

from newsletter.cli import Context, pass_context
from newsletter.web.app import SubscriptionApp, create_app
from newsletter.web.confirmation import CONFIRM_TTL


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on."
)
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64), help="Worker threads.")
@click.option(
    "--trusted-proxy",
    metavar="IP",
    default=None,
    help="The reverse proxy's address: its X-Forwarded-For names the client (per-IP limits need it).",
)
@click.option(
    "--pending-ttl",
    "pending_hours",
    type=click.IntRange(1, None),
    default=None,
    metavar="HOURS",
    help="Erase web sign-ups left unconfirmed this long, checked hourly (default: the confirmation link's lifetime).",
)
@pass_context
def serve(
    obj: Context, host: str, port: int, threads: int, trusted_proxy: str | None, pending_hours: int | None
) -> None:
    """Run the subscription web app (subscribe, confirm, one-click unsubscribe).

    Needs NEWSLETTER_SECRET (the same one `newsletter send` signs links with) and
    `[web] url` in newsletter.toml: the public URL a reverse proxy forwards to this port.
    Behind a proxy, pass its address with --trusted-proxy: otherwise every request
    seems to come from the proxy (a warning says so when forwarded headers arrive).
    Unconfirmed sign-ups are erased after --pending-ttl hours.
    Any other WSGI host can run `newsletter.web.app:app_from_env` instead.

    \b
    Example:
        NEWSLETTER_SECRET=... newsletter serve --port 8080 --trusted-proxy 127.0.0.1
    """
    import waitress  # a third-party server, needed only by this command

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(obj.settings, trusted_proxy=trusted_proxy)
    age = timedelta(hours=pending_hours) if pending_hours else timedelta(seconds=CONFIRM_TTL)
    stop = threading.Event()
    purger = threading.Thread(target=_purge_pending, args=(app, age, stop), name="purge-pending", daemon=True)
    purger.start()
    click.echo(f"Serving {obj.settings.name} on http://{host}:{port}/ (public URL {obj.settings.web_url})")
    try:
        # expose_tracebacks stays off: no stack trace ever reaches a client. Forwarded
        # headers are the app's to read (only from --trusted-proxy), not waitress's.
        waitress.serve(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="newsletter",
            clear_untrusted_proxy_headers=False,
        )
    finally:
        stop.set()
        purger.join(timeout=5)
        app.close()


PURGE_EVERY = 3600.0  # seconds between two purges of unconfirmed sign-ups


def _purge_pending(app: SubscriptionApp, age: timedelta, stop: threading.Event) -> None:
    """Erase unconfirmed web sign-ups older than `age`, now and then every PURGE_EVERY seconds."""
    log = logging.getLogger("newsletter.serve")
    while True:
        try:
            erased = app.store.purge_pending(datetime.now(UTC) - age)
            if erased:
                log.info("erased %d unconfirmed sign-up(s) older than %s", len(erased), age)
        except Exception:
            log.exception("purging unconfirmed sign-ups failed; trying again later")
        if stop.wait(PURGE_EVERY):
            return
