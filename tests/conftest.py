"""Shared fixtures: the real services the suite runs against (from tests/support/), started once per session,
and the web app served for real."""

from tests.support.aws import moto_reset, moto_server, ses_stub  # noqa: F401
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401
from tests.support.smtp import smtp_server, smtp_tls_server, tls_files  # noqa: F401
from tests.support.web import serve_app  # noqa: F401
