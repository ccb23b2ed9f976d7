"""arXiv: the Atom feed of the arXiv API (export.arxiv.org/api/query)."""

from __future__ import annotations

import re

from newsletter.content.schema import ARXIV_ID
from newsletter.ingest.candidates import (
    MAX_TAGS_FROM_SOURCE,
    Candidate,
    Parsed,
    Refusal,
    SourceError,
    accept,
    clean_line,
    iso_date,
    normalise_tag,
)
from newsletter.text import CONTROL_CHARS, http_url

ARXIV_ABS = re.compile(r"arxiv\.org/abs/(?P<id>[^\s?#]+?)(?:v\d+)?$")

ATOM = "{http://www.w3.org/2005/Atom}"


def parse_arxiv(body: bytes, *, where: str) -> Parsed:
    """An arXiv API Atom feed."""
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException

    try:
        root = SafeET.fromstring(body)
    except DefusedXmlException as exc:
        raise SourceError(where, f"refused unsafe XML ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        raise SourceError(where, f"not valid XML: {exc}") from None
    if root.tag != f"{ATOM}feed":
        raise SourceError(where, f"expected an Atom <feed> (arXiv API), got <{root.tag.rpartition('}')[2]}>")
    parsed = Parsed()
    for index, entry in enumerate(root.findall(f"{ATOM}entry")):
        item_where = f"{where}:entry[{index}]"
        entry_id = (entry.findtext(f"{ATOM}id") or "").strip()
        title = clean_line(entry.findtext(f"{ATOM}title") or "")
        summary = entry.findtext(f"{ATOM}summary") or ""
        if "/api/errors" in entry_id:  # how the arXiv API reports a bad query
            raise SourceError(where, f"the arXiv API reported an error: {clean_line(summary) or title}")
        match = ARXIV_ABS.search(entry_id)
        if not match:
            parsed.refused.append(
                Refusal(item_where, title or None, f"expected an arXiv abs URL as <id>, got {entry_id!r}")
            )
            continue
        arxiv = match["id"]
        links = {
            (link.get("title") or link.get("rel") or ""): http_url(link.get("href"))
            for link in entry.findall(f"{ATOM}link")
        }
        # An abstract from the arXiv API wraps lines at ~80 columns: one paragraph.
        abstract = " ".join(CONTROL_CHARS.sub("", summary).split())
        candidate = Candidate(
            title=title,
            abstract=abstract,
            source="arxiv",
            where=item_where,
            authors=[
                name
                for a in entry.findall(f"{ATOM}author")
                if (name := clean_line(a.findtext(f"{ATOM}name") or ""))
            ],
            published=iso_date((entry.findtext(f"{ATOM}published") or "").strip()),
            tags=list(
                dict.fromkeys(
                    t for c in entry.findall(f"{ATOM}category") if (t := normalise_tag(c.get("term") or ""))
                )
            )[:MAX_TAGS_FROM_SOURCE],
        )
        if ARXIV_ID.match(arxiv):
            candidate.arxiv = arxiv
            candidate.url = f"https://arxiv.org/abs/{arxiv}"
            candidate.pdf = f"https://arxiv.org/pdf/{arxiv}"
        else:  # old-style ids (hep-th/9901001) are not paper ids; keep the links only
            candidate.url = f"https://arxiv.org/abs/{arxiv}"
            candidate.pdf = links.get("pdf") or f"https://arxiv.org/pdf/{arxiv}"
        accept(parsed, candidate)
    return parsed
