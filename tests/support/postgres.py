"""PostgreSQL for the tests: one throwaway cluster per session, one fresh schema per test.

`NEWSLETTER_TEST_POSTGRES_URL` names a server to use (CI starts one with `.ci/postgres.sh`);
without it the session starts its own cluster with that script when Debian's server binaries
exist, and otherwise the PostgreSQL cases skip with one reason. Each test gets an empty schema
of its own (a `search_path` in the URL), dropped afterwards: cheaper than a database per test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "postgres.sh"
BACKENDS = ["sqlite", "postgresql"]


def _start_cluster(folder: str) -> str | None:
    """The URL of a cluster started in `folder`, or None when no PostgreSQL server is installed."""
    out = subprocess.run(
        ["bash", str(SCRIPT), "start", folder], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    found = re.search(r"NEWSLETTER_TEST_POSTGRES_URL=(\S+)", out)
    return found.group(1) if found else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server's URL (its test database), for the whole session."""
    url = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    # not under pytest's own temporary folders: the postgres user must be able to enter it
    folder = tempfile.mkdtemp(prefix="newsletter-postgres-")
    os.chmod(folder, 0o755)
    try:
        url = _start_cluster(folder)
        if url is None:
            pytest.skip("PostgreSQL server not installed (no /usr/lib/postgresql/*/bin/initdb)")
        yield url
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def with_schema(url: str, schema: str) -> str:
    """`url` with every connection's search_path set to `schema`."""
    return str(sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}))


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose connections see only a fresh, empty schema (dropped after the test)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(postgres_server, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each back-end: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'subscribers.db'}"
    return request.getfixturevalue("postgres_url")
