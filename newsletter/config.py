"""Settings: `newsletter.toml` → a frozen, typed object; secrets from the environment.

One table, `OPTIONS` (as mkdocs' config options), declares every key of the file: the
attribute it fills, its converter (and so its error text), whether it is required and
which environment variable overrides it; defaults are the dataclass fields' own. Every
problem in the file is reported at once; unknown keys are warned about by name. Nothing
secret is ever read from the file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from newsletter.errors import ConfigError, Problem, raise_for
from newsletter.text import http_url, is_language_tag

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
    # Opt-in: SES open and click tracking (README "Engagement"). Off: links carry
    # ses:no-track and Open/Click events are not stored; on: paper links carry link tags.
    engagement: bool = False


@dataclass(frozen=True)
class EventsSettings:
    """Where SES notifications may come from (`events poll` and `events import`)."""

    topic_arns: tuple[str, ...] = ()  # SNS topics whose envelopes are accepted; empty: any
    account_id: str | None = None  # the AWS account the topics and EventBridge events belong to


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none
    username: str | None = None  # the password comes from NEWSLETTER_SMTP_PASSWORD
    timeout: float = 30.0


@dataclass(frozen=True)
class DigestSettings:
    """`newsletter digest`: the daily issue of Hugging Face's trending papers.

    `title`, `subject` and `preheader` are templates: {date} (the day, YYYY-MM-DD),
    {count} (the papers in the issue) and {name} (the newsletter's) are filled in.
    """

    source_url: str = "https://huggingface.co/api/daily_papers"  # `?date=YYYY-MM-DD` is added
    top: int = 10
    slug: str = "trending"  # issues/<date>-<slug>.md
    title: str = "Trending papers of {date}"
    subject: str = "{name}: {count} trending papers of {date}"
    preheader: str = "The {count} papers with the most upvotes on Hugging Face on {date}"
    auto_publish: bool = False  # publish it with a send_at (for `send --due`) instead of leaving a draft
    send_time: dt.time = dt.time(8, 0)  # in the newsletter's time zone


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
    feed_size: int = 20  # issues in feed.xml and feed.json; older ones are in archived feed pages
    timezone: str = "UTC"  # an IANA zone name: what "today" and the digest's send time mean
    ses: SesSettings = field(default_factory=SesSettings)
    events: EventsSettings = field(default_factory=EventsSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The newsletter's time zone (`newsletter.timezone`)."""
        return zoneinfo.ZoneInfo(self.timezone)

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
        """The HMAC key for tokens, from NEWSLETTER_SECRET (never from a file); ConfigError if short."""
        return _secret("NEWSLETTER_SECRET")

    @property
    def old_secret(self) -> bytes | None:
        """The previous key during a rotation (NEWSLETTER_SECRET_OLD): it only verifies links."""
        return _secret("NEWSLETTER_SECRET_OLD")

    @property
    def verify_secrets(self) -> tuple[bytes, ...]:
        """Every key a link may be signed with: the current one first."""
        return tuple(s for s in (self.secret, self.old_secret) if s)


def _secret(name: str) -> bytes | None:
    from newsletter.tokens import check_secret

    value = os.environ.get(name)
    if not value:
        return None
    key = value.encode()
    problem = check_secret(f"environment: {name}", key)
    if problem:
        raise ConfigError(problem)
    return key


# ---------------------------------------------------------------------------
# Converters: each returns the typed value or raises ValueError("<what was expected>").


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("a non-empty string")
    return v.strip()


def _url(v: Any) -> str:
    url = http_url(v)
    if url is None:
        raise ValueError("an absolute http(s) URL")
    return url


def _base_url(v: Any) -> str:
    return _url(v).rstrip("/") + "/"


def _language(v: Any) -> str:
    if not is_language_tag(v):
        raise ValueError("a language tag like 'en' or 'pt-BR'")
    return v


def _address(v: Any) -> str:
    if not isinstance(v, str) or "@" not in v or any(c.isspace() for c in v.strip()):
        raise ValueError("an email address like 'editor@example.org'")
    return v.strip()


def _mailbox(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("an address like 'Name <editor@example.org>'")
    _, addr = parseaddr(v)
    if "@" not in addr or not addr.partition("@")[2]:
        raise ValueError("an address like 'Name <editor@example.org>'")
    return v.strip()


def _list_id(v: Any) -> str:
    if not isinstance(v, str) or "." not in v or any(c.isspace() or c in "<>@" for c in v):
        raise ValueError("a dotted list identifier like 'digest.example.org'")
    return v


def _positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError("a positive whole number")
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def _port(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 65536:
        raise ValueError("a port number between 1 and 65535")
    return v


def _positive_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise ValueError("a positive number")
    return float(v)


def _path(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError("a folder path")
    return v


def _timezone(v: Any) -> str:
    if isinstance(v, str) and v.strip():
        try:
            zoneinfo.ZoneInfo(v.strip())
            return v.strip()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    raise ValueError("an IANA time zone name like 'Europe/Berlin' or 'UTC'")


def _clock_time(v: Any) -> dt.time:
    if isinstance(v, str) and re.fullmatch(r"\d{2}:\d{2}", v.strip()):
        try:
            return dt.time.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError("a time of day HH:MM like '08:00'")


def _boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def _slug(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", v):
        raise ValueError("lowercase letters, digits and '-', like 'trending'")
    return v


_TEMPLATE_FIELDS = {"date": "2026-03-17", "count": 10, "name": "Name"}


def _digest_template(v: Any) -> str:
    """One line with {date}, {count} and {name} placeholders (checked by filling them in once)."""
    wanted = "one line of text; placeholders {date}, {count} and {name} only"
    if not isinstance(v, str) or not v.strip() or "\n" in v or "\r" in v:
        raise ValueError(wanted)
    try:
        v.format_map(_TEMPLATE_FIELDS)
    except (KeyError, IndexError, ValueError, AttributeError):
        raise ValueError(wanted) from None
    return v.strip()


def _one_of(*choices: str) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        if v not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return v

    return convert


_SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


def _topic_arns(v: Any) -> tuple[str, ...]:
    """A list of SNS topic ARNs; from the environment, separated by commas."""
    items = [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(a, str) and _SNS_TOPIC_ARN.match(a) for a in items):
        raise ValueError("a list of SNS topic ARNs like 'arn:aws:sns:eu-west-1:123456789012:ses-events'")
    return tuple(items)


def _account_id(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"\d{12}", v):
        raise ValueError("an AWS account id of 12 digits, as text")
    return v


def _tags(v: Any) -> dict[str, str]:
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in (*v.keys(), *v.values())):
        raise ValueError("a table of text values")
    return dict(v)


# ---------------------------------------------------------------------------
# The settings table (as mkdocs' config options): one row per key of newsletter.toml.


@dataclass(frozen=True)
class Option:
    """One key of `newsletter.toml`: the attribute it fills, how it is read, and what overrides it.

    `attr` names a `Settings` attribute, or `ses.<name>` / `smtp.<name>` / `events.<name>` /
    `digest.<name>` for those tables.
    Defaults are the dataclass fields' own: the typed declaration of each setting.
    """

    key: str  # "section.key" as written in the file
    attr: str
    convert: Callable[[Any], Any]
    required: bool = False
    env: str | None = None  # an environment variable that overrides the file

    @property
    def section(self) -> str:
        return self.key.partition(".")[0]


OPTIONS: tuple[Option, ...] = (
    Option("newsletter.name", "name", _text, required=True),
    Option("newsletter.description", "description", _text),
    Option("newsletter.base_url", "base_url", _base_url, required=True),
    Option("newsletter.language", "language", _language),
    Option("newsletter.postal_address", "postal_address", _text, required=True),
    Option("newsletter.subscribe_reason", "subscribe_reason", _text),
    Option("email.from", "sender", _mailbox, required=True),
    Option("email.reply_to", "reply_to", _mailbox),
    Option("email.list_id", "list_id", _list_id, required=True),
    Option("email.unsubscribe_mailto", "unsubscribe_mailto", _address),
    Option("email.feedback_id", "feedback_id", _text),
    Option("email.max_html_kb", "max_html_kb", _positive_int),
    Option("web.url", "web_url", _base_url),
    Option("newsletter.timezone", "timezone", _timezone),
    Option("archive.feed_size", "feed_size", _positive_int),
    Option("paths.papers", "papers_dir", _path),
    Option("paths.issues", "issues_dir", _path),
    Option("paths.templates", "templates_dir", _path),
    Option("paths.build", "build_dir", _path),
    Option("paths.site", "site_dir", _path),
    Option("paths.outbox", "outbox_dir", _path),
    Option("database.url", "database_url", _text, env="NEWSLETTER_DATABASE_URL"),
    Option("send.transport", "transport", _one_of(*TRANSPORTS), env="NEWSLETTER_TRANSPORT"),
    Option("send.rate", "rate", _positive_float),
    Option("send.outbox", "outbox_dir", _path),  # the older spelling of paths.outbox
    Option("ses.region", "ses.region", _text),
    Option("ses.configuration_set", "ses.configuration_set", _text),
    Option("ses.tags", "ses.tags", _tags),
    Option("ses.engagement", "ses.engagement", _flag),
    Option("ses.endpoint_url", "ses.endpoint_url", _url, env="NEWSLETTER_SES_ENDPOINT_URL"),
    Option("events.topic_arns", "events.topic_arns", _topic_arns, env="NEWSLETTER_EVENTS_TOPIC_ARNS"),
    Option("events.account_id", "events.account_id", _account_id),
    Option("smtp.host", "smtp.host", _text),
    Option("smtp.port", "smtp.port", _port),
    Option("smtp.security", "smtp.security", _one_of("starttls", "ssl", "none")),
    Option("smtp.username", "smtp.username", _text),
    Option("smtp.timeout", "smtp.timeout", _positive_float),
    Option("digest.source_url", "digest.source_url", _url, env="NEWSLETTER_DIGEST_SOURCE_URL"),
    Option("digest.top", "digest.top", _positive_int),
    Option("digest.slug", "digest.slug", _slug),
    Option("digest.title", "digest.title", _digest_template),
    Option("digest.subject", "digest.subject", _digest_template),
    Option("digest.preheader", "digest.preheader", _digest_template),
    Option("digest.auto_publish", "digest.auto_publish", _boolean),
    Option("digest.send_time", "digest.send_time", _clock_time),
)
_BY_KEY = {o.key: o for o in OPTIONS}
_SECTIONS = {o.section for o in OPTIONS}
_FOLDERS = tuple(dict.fromkeys(o.attr for o in OPTIONS if o.convert is _path))  # resolved against root


def load_settings(root: Path | str = ".", *, env: dict[str, str] | None = None) -> Settings:
    """Read `<root>/newsletter.toml`; report every problem at once.

    An option's environment variable (NEWSLETTER_DATABASE_URL, NEWSLETTER_TRANSPORT,
    NEWSLETTER_SES_ENDPOINT_URL, NEWSLETTER_EVENTS_TOPIC_ARNS, NEWSLETTER_DIGEST_SOURCE_URL) overrides the file, so one checkout can run against
    several environments; its value is checked like the file's.
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
    values: dict[str, Any] = {}  # attr -> typed value
    for section, table in data.items():
        if section not in _SECTIONS:
            problems.append(Problem(where, f"[{section}]", "unknown section (ignored)", warning=True))
            continue
        if not isinstance(table, dict):
            problems.append(Problem.expected(where, section, "a [section] table", table))
            continue
        for key, raw in table.items():
            dotted = f"{section}.{key}"
            option = _BY_KEY.get(dotted)
            if option is None:
                problems.append(Problem(where, dotted, "unknown setting (ignored)", warning=True))
                continue
            try:
                values[option.attr] = option.convert(raw)
            except ValueError as exc:
                problems.append(Problem.expected(where, dotted, str(exc), raw))
    for option in OPTIONS:
        if option.required and option.attr not in values and not any(p.field == option.key for p in problems):
            problems.append(Problem(where, option.key, "missing (required)"))
    for option in OPTIONS:
        if option.env and env.get(option.env):
            try:
                values[option.attr] = option.convert(env[option.env])
            except ValueError as exc:
                problems.append(Problem.expected("environment", option.env, str(exc), env[option.env]))
    problems += _foreign_topics(where, values)
    raise_for(problems)

    for attr in _FOLDERS:
        default = Settings.__dataclass_fields__[attr].default
        values[attr] = (root / values.get(attr, default)).resolve()
    values["database_url"] = _resolve_sqlite(values.get("database_url", Settings.database_url), root)
    ses = {a.removeprefix("ses."): values.pop(a) for a in list(values) if a.startswith("ses.")}
    smtp = {a.removeprefix("smtp."): values.pop(a) for a in list(values) if a.startswith("smtp.")}
    events = {a.removeprefix("events."): values.pop(a) for a in list(values) if a.startswith("events.")}
    digest = {a.removeprefix("digest."): values.pop(a) for a in list(values) if a.startswith("digest.")}
    return Settings(
        root=root,
        ses=SesSettings(**ses),
        smtp=SmtpSettings(**smtp),
        events=EventsSettings(**events),
        digest=DigestSettings(**digest),
        **values,
    )


def _foreign_topics(where: str, values: dict[str, Any]) -> list[Problem]:
    """Allowed topics of another account than `events.account_id` would refuse every event."""
    account = values.get("events.account_id")
    return [
        Problem.expected(where, "events.topic_arns", f"topics of account {account}", arn)
        for arn in values.get("events.topic_arns", ())
        if account and arn.split(":")[4] != account
    ]


def _resolve_sqlite(url: str, root: Path) -> str:
    """Make a relative SQLite path relative to the newsletter folder, not the cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url
