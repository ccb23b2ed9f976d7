"""Writing new issue files (`newsletter issue new`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from newsletter.config import Settings
from newsletter.errors import ContentError


def new_issue_file(
    settings: Settings,
    *,
    slug: str,
    date: dt.date,
    number: int,
    title: str | None = None,
    language: str | None = None,
    tags: tuple[str, ...] = (),
    limit: int = 10,
) -> Path:
    """Create `issues/<date>-<slug>.md` as a draft; refuse to overwrite."""
    path = settings.issues_dir / f"{date.isoformat()}-{slug}.md"
    if path.exists():
        raise ContentError(f"{path.name}: already exists (choose another slug or date)")
    title = title or slug.replace("-", " ").capitalize()
    front: dict[str, object] = {
        "title": title,
        "subject": f"{settings.name} #{number}: {title}",
        "date": date,
        "number": number,
        "preheader": "",
        "status": "draft",
        "include": [],
        "select": {"tags": list(tags), "sort": "published", "limit": limit}
        if tags
        else {"sort": "published", "limit": limit},
    }
    if language:
        front["language"] = language
    text = (
        "---\n"
        + yaml.safe_dump(front, allow_unicode=True, sort_keys=False)
        + "---\n"
        + ("Write the introduction here: what this issue is about and why these papers.\n")
    )
    settings.issues_dir.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as handle:
        handle.write(text)
    return path
