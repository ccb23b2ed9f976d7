"""`newsletter preview`: look at an issue while writing it."""

from __future__ import annotations

import click

from newsletter.cli import Context, pass_context
from newsletter.cli.listen import listen_options, open_server


@click.command()
@click.argument("issue")
@listen_options
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

    # resolved once (a short name or prefix becomes the slug), failing early on a bad ref
    issue = load_library(ctx.settings, only=issue).issue(issue).slug
    state = Preview(ctx.settings.root, issue)
    state.refresh()
    server = open_server(lambda h, p: make_server(state, h, p), host, port)
    click.echo(f"Previewing {issue} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        server.server_close()
