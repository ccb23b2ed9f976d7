"""Frozen issues: what an issue was sent (or first published) with, recorded beside it.

The first real send of an issue, or the first `archive publish` of a published issue
never sent, writes `issues/<slug>.sent.toml`: the papers in order, the subject, when,
and a hash of the issue file as it was. The editor commits it. From then on the paper
list comes from this record, not from the `select` rules, so papers imported later never
flow into an issue readers already have; the front matter and introduction may still be
corrected (the archive page follows them). Only `newsletter issue refreeze` (which shows
what changes) or `unfreeze` changes the record. The issue loader reads `*.md` only, so a
record is never taken for an issue.

Translations (`issues/<slug>.<lang>.md`) are part of what was sent: the first send
records a hash of each, `check` warns when one changed, appeared or went since, and
later runs of the same send use only the recorded translations, so every reader of a
language gets the same one (see `newsletter.delivery.plan.send_languages`). A record
written before translations were recorded has none (`translations` is None).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.atomic_files import replace_file
from newsletter.errors import ContentError, Problem

if TYPE_CHECKING:
    from newsletter.content.issues import Issue
    from newsletter.content.papers import Paper

FREEZE_SUFFIX = ".sent.toml"
FROZEN_BY = ("send", "archive publish", "issue refreeze")


@dataclass(frozen=True)
class Freeze:
    """An issue's record of what was sent: `issues/<slug>.sent.toml`."""

    papers: tuple[str, ...]  # paper ids, in the order readers got them
    subject: str
    sent: dt.datetime  # UTC
    by: str  # one of FROZEN_BY
    source_sha256: str  # of the issue file when frozen: `check` warns when it changed
    translations: Mapping[str, str] | None = None  # language -> SHA-256 of its file; None: not recorded

    def as_toml(self, slug: str) -> str:
        """The record as TOML (strings JSON-quoted: a JSON string is a valid TOML basic string)."""
        q = lambda s: json.dumps(s, ensure_ascii=False)  # noqa: E731
        papers = "".join(f"  {q(pid)},\n" for pid in self.papers)
        return (
            f"# What {slug} was sent with (written by `newsletter {self.by}`). Commit this file.\n"
            "# Its paper list is fixed: editing the issue's front matter or introduction changes the\n"
            "# archive page, never these papers. `newsletter issue refreeze` shows and applies a new list.\n"
            f"subject = {q(self.subject)}\n"
            f"sent = {self.sent.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
            f"by = {q(self.by)}\n"
            f"source_sha256 = {q(self.source_sha256)}\n"
            f"papers = [\n{papers}]\n" + self._translations_toml()
        )

    def _translations_toml(self) -> str:
        if self.translations is None:
            return ""
        q = lambda s: json.dumps(s, ensure_ascii=False)  # noqa: E731
        lines = "".join(f"{q(lang)} = {q(sha)}\n" for lang, sha in sorted(self.translations.items()))
        return f"\n# The translations it was sent in: later runs of the send use these only.\n[translations]\n{lines}"


def freeze_path(issue_path: Path) -> Path:
    """`issues/<slug>.sent.toml` for `issues/<slug>.md`."""
    return issue_path.with_name(issue_path.stem + FREEZE_SUFFIX)


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def read_freeze(issue_path: Path, problems: list[Problem], where: str) -> Freeze | None:
    """The issue's freeze record, or None when it has none; a broken record is an error."""
    path = freeze_path(issue_path)
    if not path.is_file():
        return None
    where = where.removesuffix(".md") + FREEZE_SUFFIX
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.append(Problem(where, None, f"cannot read the freeze record: {exc}"))
        return None
    papers, subject, sent = data.get("papers"), data.get("subject"), data.get("sent")
    before = len(problems)
    if not isinstance(papers, list) or not all(isinstance(p, str) for p in papers):
        problems.append(Problem.expected(where, "papers", "a list of paper ids", papers))
    if not isinstance(subject, str):
        problems.append(Problem.expected(where, "subject", "a string", subject))
    if not isinstance(sent, dt.datetime):
        problems.append(Problem.expected(where, "sent", "a date and time like 2026-03-17T08:00:00Z", sent))
    translations = data.get("translations")
    if translations is not None and not (
        isinstance(translations, dict) and all(isinstance(v, str) for v in translations.values())
    ):
        problems.append(Problem.expected(where, "translations", "a table of language = hash", translations))
    if len(problems) > before:
        return None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=dt.UTC)
    return Freeze(
        papers=tuple(papers),
        subject=subject,
        sent=sent,
        by=str(data.get("by", "send")),
        source_sha256=str(data.get("source_sha256", "")),
        translations=translations,
    )


def freeze(
    issue: Issue,
    papers: Sequence[Paper],
    subject: str,
    when: dt.datetime,
    *,
    by: str = "send",
    translations: Mapping[str, Path] | None = None,
) -> Freeze:
    """Record `papers` as what `issue` was sent with; an existing record is kept, never replaced.

    `translations` (language -> file) are the translations it is sent in: their hashes are recorded.

    Called at the first real send (and, for an issue never sent, its first archive
    publish); a resumed send calls it again and gets the record it already has.
    """
    if issue.frozen is not None:
        return issue.frozen
    existing = read_freeze(issue.path, problems := [], issue.path.name)
    if existing is not None:
        return existing
    if problems:
        raise ContentError(str(problems[0]))
    record = Freeze(
        papers=tuple(p.id for p in papers),
        subject=subject,
        sent=when.astimezone(dt.UTC).replace(microsecond=0),
        by=by,
        source_sha256=file_sha256(issue.path),
        translations=translation_hashes(translations) if translations is not None else None,
    )
    write_freeze(issue, record)
    return record


def freeze_published(
    issues: Sequence[Issue], planned: Mapping[str, Sequence[Paper]], when: dt.datetime
) -> list[Issue]:
    """Freeze every published issue not frozen yet with its `planned` papers (at `archive publish`).

    Once the archive is public, a published issue's page must not change its papers
    because papers were imported later, even if it was never mailed. Returns the
    issues frozen now; an issue without papers is left alone (`check` reports it).
    """
    frozen_now = []
    for issue in issues:
        if issue.published and issue.frozen is None and planned.get(issue.slug):
            freeze(issue, planned[issue.slug], issue.subject, when, by="archive publish")
            frozen_now.append(issue)
    return frozen_now


def write_freeze(issue: Issue, record: Freeze) -> Path:
    """Write (or replace) the record atomically; `freeze` and `issue refreeze` call this."""
    path = freeze_path(issue.path)
    replace_file(path, record.as_toml(issue.slug).encode("utf-8"))
    return path


def unfreeze(issue: Issue) -> bool:
    """Remove the record: the `select` rules pick the papers again. True if there was one."""
    path = freeze_path(issue.path)
    if not path.exists():
        return False
    path.unlink()
    return True


def frozen_ids(issues: Sequence[Issue]) -> set[str]:
    """Every paper any frozen issue featured: no other issue's rules may pick these."""
    return {pid for i in issues if i.frozen is not None for pid in i.frozen.papers}


def translation_hashes(translations: Mapping[str, Path]) -> dict[str, str]:
    """What a record keeps of each translation: the SHA-256 of its file, by language."""
    return {language: file_sha256(path) for language, path in sorted(translations.items())}


def translations_changed_since_frozen(issue: Issue, translations: Mapping[str, Path]) -> list[str]:
    """How the issue's translations (language -> file) differ from the ones it was sent in, one line each."""
    frozen = issue.frozen
    if frozen is None or frozen.translations is None:
        return []
    name = freeze_path(issue.path).name
    lines = []
    for language in sorted(set(frozen.translations) | set(translations)):
        path = translations.get(language)
        shown = f"{issue.slug}.{language}.md"
        if path is None:
            lines.append(
                f"{shown} is gone: the issue was sent in {language} (see {name}); a send not finished "
                f"refuses to go on without it"
            )
        elif language not in frozen.translations:
            lines.append(
                f"{shown} was added after the issue was sent: readers of this issue do not get it "
                f"(`newsletter issue refreeze {issue.slug}` records it)"
            )
        elif frozen.translations[language] != file_sha256(path):
            lines.append(f"{shown} changed since it was sent: the archive page shows the edit")
    return lines


def changed_since_frozen(issue: Issue) -> bool:
    """Whether the issue file differs from the one the record was made from."""
    frozen = issue.frozen
    return bool(frozen and frozen.source_sha256 and frozen.source_sha256 != file_sha256(issue.path))


def require_sendable(issue: Issue) -> None:
    """Refuse to send a draft to the list: only published issues reach readers (and the archive)."""
    if issue.status != "published":
        raise ContentError(
            f"{issue.path.name}: status: {issue.status}; only published issues are sent to the list "
            "(a draft has no archive page, so its 'view in browser' link would not work)\n\n"
            f"To publish it, set 'status: published' in issues/{issue.path.name}.\n"
            "Try it first with `newsletter send ISSUE --test you@example.org` or `--dry-run`: "
            "both work on drafts."
        )
