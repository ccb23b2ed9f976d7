"""`newsletter preview`: look at an issue while writing it."""

from __future__ import annotations

import click

from newsletter.cli import Context, pass_context


@click.command()
@click.argument("issue")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@pass_context
def preview(ctx: Context, issue: str, port: int, host: str) -> None:
    """Serve ISSUE in desktop and 375 px phone frames, plus its text part.

    The preview rebuilds when a paper, issue, template or newsletter.toml changes,
    and the page reloads itself. Ctrl-C stops it.

    \b
    Example:
        newsletter preview 2026-03-17-multilingual-llms --port 8000
    """
    from newsletter.content.library import load_library
    from newsletter.mail.preview import Preview, make_server

    load_library(ctx.settings, only=issue).issue(issue)  # fail early on a bad ref
    state = Preview(ctx.settings.root, issue)
    state.refresh()
    server = make_server(state, host, port)
    click.echo(f"Previewing {issue} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        server.server_close()
