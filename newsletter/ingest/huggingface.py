"""Hugging Face daily papers: the JSON list of https://huggingface.co/api/daily_papers."""

from __future__ import annotations

from typing import Any

from newsletter.content.schema import ARXIV_ID
from newsletter.ingest.candidates import (
    MAX_TAGS_FROM_SOURCE,
    Candidate,
    Parsed,
    Refusal,
    SourceError,
    accept,
    arxiv_links,
    clean_line,
    clean_paragraphs,
    iso_date,
    normalise_tag,
)
from newsletter.text import http_url


def parse_hf(data: Any, *, where: str) -> Parsed:
    """Hugging Face daily-papers JSON (already decoded): a list of {paper: {...}, thumbnail, ...}."""
    if isinstance(data, dict) and isinstance(data.get("papers"), list):
        data = data["papers"]
    if not isinstance(data, list):
        raise SourceError(where, f"expected a JSON list of daily papers, got {_json_kind(data)}")
    parsed = Parsed()
    for index, item in enumerate(data):
        item_where = f"{where}[{index}]"
        if not isinstance(item, dict):
            parsed.refused.append(Refusal(item_where, None, f"expected an object, got {_json_kind(item)}"))
            continue
        paper = item.get("paper") if isinstance(item.get("paper"), dict) else item
        raw_title = paper.get("title") or item.get("title")
        title = clean_line(raw_title) if isinstance(raw_title, str) else ""
        raw_id = paper.get("id")
        arxiv = raw_id.strip() if isinstance(raw_id, str) else None
        if raw_id is not None and (arxiv is None or not ARXIV_ID.match(arxiv)):
            # A JSON number cannot be an id: 2401.10010 arrives as 2401.1001.
            kind = "" if isinstance(raw_id, str) else f" ({_json_kind(raw_id)} in JSON, not a string)"
            parsed.refused.append(
                Refusal(
                    item_where, title or None, f"expected an arXiv id like 2412.04003, got {raw_id!r}{kind}"
                )
            )
            continue
        summary = paper.get("summary") or item.get("summary")
        authors = [
            clean_line(a["name"])
            for a in paper.get("authors") or []
            if isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"].strip()
            # `hidden` only asks Hugging Face not to display the name; arXiv lists the author
        ]
        upvotes = paper.get("upvotes")
        keywords = paper.get("ai_keywords") or []
        tags = list(dict.fromkeys(t for k in keywords if isinstance(k, str) and (t := normalise_tag(k))))
        thumbnail = http_url(item.get("thumbnail"))
        candidate = Candidate(
            title=title,
            abstract=clean_paragraphs(summary) if isinstance(summary, str) else "",
            source="hf",
            where=item_where,
            authors=authors,
            published=iso_date(paper.get("publishedAt")) or iso_date(item.get("publishedAt")),
            url=f"https://huggingface.co/papers/{arxiv}" if arxiv else None,
            code=http_url(paper.get("githubRepo")),
            project_page=http_url(paper.get("projectPage")),
            thumbnail=thumbnail,
            thumbnail_alt=f"Thumbnail for {title}" if thumbnail and title else None,
            upvotes=_count(upvotes),
            tags=tags[:MAX_TAGS_FROM_SOURCE],
        )
        if arxiv:
            candidate.arxiv, candidate.pdf = arxiv, arxiv_links(arxiv)["pdf"]
        accept(parsed, candidate)
    return parsed


def _count(value: Any) -> int | None:
    """A whole number >= 0 from JSON (a number, or digits in a string), else None."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _json_kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        type(None): "null",
        int: "a number",
        float: "a number",
        bool: "a boolean",
    }.get(type(value), type(value).__name__)
