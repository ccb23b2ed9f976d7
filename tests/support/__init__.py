"""What more than one test module needs: real servers, the fixture newsletter, golden files.

    project   paths of the repository and its fixtures; copies of the fixture newsletter; the CLI
    golden    the one comparison with tests/golden/ (NEWSLETTER_UPDATE_GOLDEN=1 rewrites)
    sending   the fixture issue, its signing secret, a set of readers, a message parser
    aws       moto in server mode and an SES v2 stub (pytest fixtures and bench helpers)
    smtp      aiosmtpd servers, plain and TLS (pytest fixtures)
    sources   an HTTP server that serves the paper-import fixtures (a pytest fixture)
    postgres  a throwaway PostgreSQL cluster per session, a fresh schema per test (pytest fixtures)

tests/conftest.py registers the server fixtures for every module. A test module never
imports from another test module: what is shared lives here.
"""
