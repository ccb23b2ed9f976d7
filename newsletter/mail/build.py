"""Building an issue: render it once and write what an editor looks at before sending.

`build/<slug>/email.html` and `email.txt` keep the per-reader markers (they are
what every message is made from); `preview.eml` is the complete message one sample
reader would receive.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from newsletter.atomic_files import replace_file
from newsletter.content.library import Issue, Library
from newsletter.content.selection import papers_for
from newsletter.mail.message import MessageTemplate, Recipient
from newsletter.mail.render import Rendered, render_issue

SAMPLE_READER = Recipient(
    email="reader@example.org", name="Ada Lovelace", token="preview-token", preferences_token="preview-token"
)


@dataclass(frozen=True)
class Built:
    rendered: Rendered
    template: MessageTemplate
    preview: bytes  # the complete message for SAMPLE_READER
    folder: Path | None = None


def build_message(
    library: Library, issue: Issue, *, subject_prefix: str = "", language: str | None = None
) -> Built:
    """Render `issue` (in its best translation for `language`, if given) and encode its message template."""
    rendered = render_issue(library, issue, papers_for(library, issue), language=language)
    # The issue's own date keeps preview.eml byte-identical between builds.
    date = dt.datetime.combine(issue.date, dt.time(8, 0), tzinfo=dt.UTC)
    template = MessageTemplate.build(rendered, library.settings, date=date, subject_prefix=subject_prefix)
    return Built(rendered=rendered, template=template, preview=template.personalise(SAMPLE_READER))


def write_build(built: Built, out: Path) -> Built:
    """Write email.html, email.txt and preview.eml under `out/<slug>/`, each atomically."""
    folder = out / built.rendered.issue.slug
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "email.html", built.rendered.html.encode("utf-8"))
    write_atomic(folder / "email.txt", built.rendered.text.encode("utf-8"))
    write_atomic(folder / "preview.eml", built.preview)
    return Built(built.rendered, built.template, built.preview, folder)


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` unless it already holds exactly that; True if written."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    replace_file(path, data)
    return True
