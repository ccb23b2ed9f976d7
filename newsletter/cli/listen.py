"""The address options of the local HTTP commands (`preview`, `archive serve`), declared once.

Both take `--host` and `--port`. When the default port is taken (another preview, the
archive, anything else), the next free one is used and the command says so; a port the
editor chose is used or refused, never silently changed.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

import click
from click.core import ParameterSource

from newsletter.errors import NewsletterError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
PORTS_TRIED = 20  # after the default: 8000..8020

Server = TypeVar("Server")


def listen_options(command: Callable) -> Callable:
    """Add `--host` and `--port` to a command."""
    command = click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=DEFAULT_PORT,
        show_default=True,
        help="Port to listen on (when the default is taken, the next free one).",
    )(command)
    return click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")(
        command
    )


def open_server(make: Callable[[str, int], Server], host: str, port: int) -> Server:
    """`make(host, port)`, moving to the next free port if `port` is the default and taken."""
    ctx = click.get_current_context(silent=True)
    chosen = ctx is not None and ctx.get_parameter_source("port") not in (ParameterSource.DEFAULT, None)
    last = port if chosen or port == 0 else min(port + PORTS_TRIED, 65535)
    for candidate in range(port, last + 1):
        try:
            server = make(host, candidate)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                continue
            raise NewsletterError(
                f"--host: cannot listen on {host}:{candidate}: {exc.strerror or exc}"
            ) from None
        if candidate != port:
            click.echo(f"Port {port} is in use; using {candidate} instead.", err=True)
        return server
    if chosen:
        raise NewsletterError(
            f"--port: expected a free port, got {port} (in use)\n\n"
            "Stop what is listening there, or pass another --port (or --port 0 for any free one)."
        )
    raise NewsletterError(
        f"--port: expected a free port from {port} to {last}, got none\n\nPass --port 0 for any free one."
    )
