"""`preview` and `archive serve` share --host/--port and move on from a taken default port."""

from __future__ import annotations

import socket

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.cli.listen import listen_options, open_server


def _busy() -> socket.socket:
    return _busy_on("127.0.0.1", 0)


def _command():
    """A command with the shared options whose 'server' is a bound socket."""
    opened: list[socket.socket] = []

    @click.command()
    @listen_options
    def probe(host: str, port: int) -> None:
        server = open_server(_busy_on, host, port)
        opened.append(server)
        click.echo(f"listening on {server.getsockname()[1]}")

    return probe, opened


def _busy_on(host: str, port: int) -> socket.socket:
    sock = socket.socket()
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen()
    return sock


def test_the_next_free_port_is_used_when_the_default_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _busy()
    port = taken.getsockname()[1]
    monkeypatch.setattr("newsletter.cli.listen.DEFAULT_PORT", port)
    probe, opened = _command()  # the options read the (patched) default when they are made
    try:
        result = CliRunner().invoke(probe, [], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        got = opened[0].getsockname()[1]
        assert got > port
        assert f"Port {port} is in use; using {got} instead." in result.output
    finally:
        taken.close()
        for sock in opened:
            sock.close()


def test_a_port_the_editor_chose_is_refused_when_taken_not_changed() -> None:
    taken = _busy()
    port = taken.getsockname()[1]
    probe, opened = _command()
    try:
        result = CliRunner().invoke(probe, ["--port", str(port)])
        assert result.exit_code == 1
        assert f"Error: --port: expected a free port, got {port} (in use)" in result.output
        assert not opened
    finally:
        taken.close()


@pytest.mark.parametrize("command", [["preview"], ["archive", "serve"]])
def test_preview_and_archive_serve_spell_the_options_alike(command: list[str]) -> None:
    help_text = CliRunner().invoke(main, [*command, "--help"]).output
    assert "--host TEXT" in help_text and "--port INTEGER RANGE" in help_text
    assert "--bind" not in help_text
