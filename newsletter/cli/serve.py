"""`newsletter serve`: the subscribe / confirm / one-click unsubscribe endpoint, on waitress."""

from __future__ import annotations

import logging

import click

from newsletter.cli import Context, pass_context
from newsletter.web.app import create_app


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
    help="The reverse proxy whose X-Forwarded-For is believed (per-IP rate limits need the real client IP).",
)
@pass_context
def serve(obj: Context, host: str, port: int, threads: int, trusted_proxy: str | None) -> None:
    """Run the subscription web app (subscribe, confirm, one-click unsubscribe).

    Needs NEWSLETTER_SECRET (the same one `newsletter send` signs links with) and
    `[web] url` in newsletter.toml: the public URL a reverse proxy forwards to this port.
    Any other WSGI host can run `newsletter.web.app:app_from_env` instead.

    \b
    Example:
        NEWSLETTER_SECRET=... newsletter serve --port 8080
    """
    import waitress  # a third-party server, needed only by this command

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(obj.settings)
    proxy = {}
    if trusted_proxy:
        proxy = {"trusted_proxy": trusted_proxy, "trusted_proxy_headers": {"x-forwarded-for"}}
    click.echo(f"Serving {obj.settings.name} on http://{host}:{port}/ (public URL {obj.settings.web_url})")
    try:
        # expose_tracebacks stays off: no stack trace ever reaches a client.
        waitress.serve(app, host=host, port=port, threads=threads, ident="newsletter", **proxy)
    finally:
        app.close()
