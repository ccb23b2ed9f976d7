"""Shared fixtures: the real services the suite runs against, started once per session."""

from tests.servers_aws import moto_reset, moto_server, ses_stub  # noqa: F401
from tests.servers_postgres import database_url, postgres_server, postgres_url  # noqa: F401
from tests.servers_smtp import smtp_server, smtp_tls_server, tls_files  # noqa: F401
