"""Settings: `newsletter.toml` → a frozen, typed object; secrets from the environment.

Every problem in the file is reported at once (mkdocs-style); unknown keys are
warned about by name. Nothing secret is ever read from the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newsletter.errors import ConfigError, Problem, raise_for

SETTINGS_FILE = "newsletter.toml"
RTL_LANGUAGES = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "ha", "he", "iw", "ks", "ps", "sd", "ug", "ur", "yi"}
)
TRANSPORTS = ("file", "ses", "smtp", "memory")


def text_direction(language: str) -> str:
    """'rtl' for right-to-left languages (by primary subtag), else 'ltr'."""
    return "rtl" if language.split("-")[0].lower() in RTL_LANGUAGES else "ltr"


@dataclass(frozen=True)
class SesSettings:
    region: str = "us-east-1"
    configuration_set: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    endpoint_url: str | None = None  # for tests and SES-compatible services


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none
    username: str | None = None  # the password comes from NEWSLETTER_SMTP_PASSWORD
    timeout: float = 30.0


@dataclass(frozen=True)
class Settings:
    """The newsletter's settings. Paths are absolute (resolved against `root`)."""

    root: Path
    name: str
    base_url: str  # the archive site; "view in browser" and "read more" point into it
    sender: str  # "Name <addr>"
    list_id: str  # e.g. "multilingual.digest.example.org"
    postal_address: str
    reply_to: str | None = None
    language: str = "en"
    description: str = ""
    subscribe_reason: str | None = None
    web_url: str | None = None  # public URL of `newsletter serve` (unsubscribe, subscribe, confirm)
    unsubscribe_mailto: str | None = None
    feedback_id: str | None = None  # the stable "a:b:c:SenderId"; defaults from list_id
    papers_dir: Path = Path("papers")
    issues_dir: Path = Path("issues")
    templates_dir: Path = Path("templates")
    build_dir: Path = Path("build")
    site_dir: Path = Path("site")
    outbox_dir: Path = Path("outbox")
    database_url: str = "sqlite:///subscribers/subscribers.db"
    transport: str = "file"
    rate: float | None = None  # messages per second; None: from SES quota, else unlimited
    max_html_kb: int = 95
    ses: SesSettings = field(default_factory=SesSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)

    @property
    def sender_address(self) -> Address:
        name, addr = parseaddr(self.sender)
        user, _, domain = addr.partition("@")
        return Address(display_name=name, username=user, domain=domain)

    @property
    def feedback_id_value(self) -> str:
        return self.feedback_id or f"newsletter:{self.list_id}:digest:newsletter"

    def url(self, path: str = "") -> str:
        """An absolute URL into the archive site (base_url always ends with '/')."""
        return self.base_url + path.lstrip("/")

    def web(self, path: str = "") -> str | None:
        return None if self.web_url is None else self.web_url + path.lstrip("/")

    @property
    def secret(self) -> bytes | None:
        """The HMAC key for tokens, from NEWSLETTER_SECRET (never from a file)."""
        value = os.environ.get("NEWSLETTER_SECRET")
        return value.encode() if value else None


# (section, key) -> (Settings attribute, converter name)
_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("newsletter", "name"): ("name", "text"),
    ("newsletter", "description"): ("description", "text"),
    ("newsletter", "base_url"): ("base_url", "base_url"),
    ("newsletter", "language"): ("language", "language"),
    ("newsletter", "postal_address"): ("postal_address", "text"),
    ("newsletter", "subscribe_reason"): ("subscribe_reason", "text"),
    ("email", "from"): ("sender", "mailbox"),
    ("email", "reply_to"): ("reply_to", "mailbox"),
    ("email", "list_id"): ("list_id", "list_id"),
    ("email", "unsubscribe_mailto"): ("unsubscribe_mailto", "address"),
    ("email", "feedback_id"): ("feedback_id", "text"),
    ("email", "max_html_kb"): ("max_html_kb", "positive_int"),
    ("web", "url"): ("web_url", "base_url"),
    ("paths", "papers"): ("papers_dir", "path"),
    ("paths", "issues"): ("issues_dir", "path"),
    ("paths", "templates"): ("templates_dir", "path"),
    ("paths", "build"): ("build_dir", "path"),
    ("paths", "site"): ("site_dir", "path"),
    ("paths", "outbox"): ("outbox_dir", "path"),
    ("database", "url"): ("database_url", "text"),
    ("send", "transport"): ("transport", "transport"),
    ("send", "rate"): ("rate", "positive_float"),
    ("send", "outbox"): ("outbox_dir", "path"),
}
_SES_KEYS = {"region": "text", "configuration_set": "text", "tags": "tags", "endpoint_url": "url"}
_SMTP_KEYS = {
    "host": "text",
    "port": "port",
    "security": "security",
    "username": "text",
    "timeout": "positive_float",
}
_REQUIRED = {
    "name": "newsletter.name",
    "base_url": "newsletter.base_url",
    "sender": "email.from",
    "list_id": "email.list_id",
    "postal_address": "newsletter.postal_address",
}


class _Converters:
    """Each converter returns the typed value or raises ValueError('expected …')."""

    @staticmethod
    def text(v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError("a non-empty string")
        return v.strip()

    @staticmethod
    def url(v: Any) -> str:
        if not isinstance(v, str) or urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).netloc:
            raise ValueError("an absolute http(s) URL")
        return v

    @classmethod
    def base_url(cls, v: Any) -> str:
        return cls.url(v).rstrip("/") + "/"

    @staticmethod
    def language(v: Any) -> str:
        if not isinstance(v, str) or not all(p.isalnum() for p in v.split("-")) or not v:
            raise ValueError("a language tag like 'en' or 'pt-BR'")
        return v

    @staticmethod
    def address(v: Any) -> str:
        if not isinstance(v, str) or "@" not in v or any(c.isspace() for c in v.strip()):
            raise ValueError("an email address like 'editor@example.org'")
        return v.strip()

    @staticmethod
    def mailbox(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError("an address like 'Name <editor@example.org>'")
        _, addr = parseaddr(v)
        if "@" not in addr or not addr.partition("@")[2]:
            raise ValueError("an address like 'Name <editor@example.org>'")
        return v.strip()

    @staticmethod
    def list_id(v: Any) -> str:
        if not isinstance(v, str) or "." not in v or any(c.isspace() or c in "<>@" for c in v):
            raise ValueError("a dotted list identifier like 'digest.example.org'")
        return v

    @staticmethod
    def positive_int(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError("a positive whole number")
        return v

    @staticmethod
    def port(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 65536:
            raise ValueError("a port number between 1 and 65535")
        return v

    @staticmethod
    def positive_float(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ValueError("a positive number")
        return float(v)

    @staticmethod
    def path(v: Any) -> str:
        if not isinstance(v, str) or not v:
            raise ValueError("a folder path")
        return v

    @staticmethod
    def transport(v: Any) -> str:
        if v not in TRANSPORTS:
            raise ValueError("one of " + ", ".join(TRANSPORTS))
        return v

    @staticmethod
    def security(v: Any) -> str:
        if v not in ("starttls", "ssl", "none"):
            raise ValueError("one of starttls, ssl, none")
        return v

    @staticmethod
    def tags(v: Any) -> dict[str, str]:
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in (*v.keys(), *v.values())):
            raise ValueError("a table of text values")
        return dict(v)


def load_settings(root: Path | str = ".", *, env: dict[str, str] | None = None) -> Settings:
    """Read `<root>/newsletter.toml`; report every problem at once.

    NEWSLETTER_DATABASE_URL, NEWSLETTER_TRANSPORT and NEWSLETTER_SES_ENDPOINT_URL
    override the file, so one checkout can run against several environments.
    """
    env = os.environ if env is None else env
    root = Path(root).resolve()
    path = root / SETTINGS_FILE
    where = SETTINGS_FILE if Path.cwd() == root else str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: no settings file found\n\n"
            "Run this inside a newsletter folder, pass --root, or create one with `newsletter init DIR`."
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None

    problems: list[Problem] = []
    values: dict[str, Any] = {}
    ses: dict[str, Any] = {}
    smtp: dict[str, Any] = {}
    known_sections = {s for s, _ in _KEYS} | {"ses", "smtp"}
    for section, table in data.items():
        if section not in known_sections:
            problems.append(Problem(where, f"[{section}]", "unknown section (ignored)", warning=True))
            continue
        if not isinstance(table, dict):
            problems.append(Problem.expected(where, section, "a [section] table", table))
            continue
        for key, raw in table.items():
            dotted = f"{section}.{key}"
            if section in ("ses", "smtp"):
                kind = (_SES_KEYS if section == "ses" else _SMTP_KEYS).get(key)
                target, attr = (ses if section == "ses" else smtp), key
            else:
                attr, kind = _KEYS.get((section, key), (None, None))
                target = values
            if kind is None:
                problems.append(Problem(where, dotted, "unknown setting (ignored)", warning=True))
                continue
            try:
                target[attr] = getattr(_Converters, kind)(raw)
            except ValueError as exc:
                problems.append(Problem.expected(where, dotted, str(exc), raw))
    for attr, dotted in _REQUIRED.items():
        if attr not in values and not any(p.field == dotted for p in problems):
            problems.append(Problem(where, dotted, "missing (required)"))

    overrides = {
        "NEWSLETTER_DATABASE_URL": ("database_url", "text"),
        "NEWSLETTER_TRANSPORT": ("transport", "transport"),
    }
    for var, (attr, kind) in overrides.items():
        if env.get(var):
            try:
                values[attr] = getattr(_Converters, kind)(env[var])
            except ValueError as exc:
                problems.append(Problem.expected("environment", var, str(exc), env[var]))
    if env.get("NEWSLETTER_SES_ENDPOINT_URL"):
        ses["endpoint_url"] = env["NEWSLETTER_SES_ENDPOINT_URL"]
    raise_for(problems)

    for attr in ("papers_dir", "issues_dir", "templates_dir", "build_dir", "site_dir", "outbox_dir"):
        default = Settings.__dataclass_fields__[attr].default
        values[attr] = (root / values.get(attr, default)).resolve()
    values["database_url"] = _resolve_sqlite(values.get("database_url", Settings.database_url), root)
    return Settings(root=root, ses=SesSettings(**ses), smtp=SmtpSettings(**smtp), **values)


def _resolve_sqlite(url: str, root: Path) -> str:
    """Make a relative SQLite path relative to the newsletter folder, not the cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url
