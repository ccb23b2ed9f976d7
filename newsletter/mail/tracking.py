"""SES engagement tracking in the email: link tags that name each paper, `ses:no-track` elsewhere.

SES rewrites the links of a message (click tracking) and adds an open pixel (open
tracking) when the configuration set the message is sent through tracks them. What the
email itself says about it (SES developer guide, "Tagging links", and
`<a ses:no-track href=...>`):
- `ses.engagement` on: every link of a paper carries ``ses:tags="paper:<tag>;"``, so a
  Click event names the paper in ``click.linkTags``; the unsubscribe link carries
  ``ses:no-track`` (its click is not engagement, and its URL should reach the reader as sent);
- off: every link carries ``ses:no-track``, so even a set that tracks clicks leaves the
  links alone (the open pixel is the configuration set's to turn off: see the README).
The attributes are written only for SES (`send.transport = "ses"`, or engagement on):
other transports get the links as they are.

A link tag's value may hold only ASCII letters, digits, ``_`` and ``-`` (at most 256
characters), so a paper id is spelled by `link_tag` and found again by comparing spellings.
"""

from __future__ import annotations

import re

from markupsafe import Markup

from newsletter.config import Settings

PAPER_TAG = "paper"  # the link tag's name: ses:tags="paper:<tag>;"
NO_TRACK = " ses:no-track"
_NOT_TAG = re.compile(r"[^A-Za-z0-9_-]")
# An <a> start tag that carries no ses: attribute yet (content's links included).
_UNMARKED_ANCHOR = re.compile(r"<a(?=[\s>])(?![^>]*\sses:)", re.IGNORECASE)


def link_tag(paper_id: str) -> str:
    """`paper_id` as an SES link tag value: other characters become ``_``, at most 256 of them."""
    return _NOT_TAG.sub("_", paper_id)[:256]


def applies(settings: Settings) -> bool:
    """Whether the email carries SES's link attributes at all."""
    return settings.transport == "ses" or settings.ses.engagement


def paper_link_attributes(settings: Settings, paper_id: str) -> Markup:
    """The attributes of a paper's links: its link tag when engagement is on, else none here."""
    if not settings.ses.engagement:
        return Markup("")
    return Markup(' ses:tags="{}:{};"').format(PAPER_TAG, link_tag(paper_id))


def untracked_attributes(settings: Settings) -> Markup:
    """The attributes of a link that is never tracked (the unsubscribe link)."""
    return Markup(NO_TRACK) if applies(settings) else Markup("")


def mark_untracked(settings: Settings, document: str) -> str:
    """With engagement off (and SES's attributes in use), every link not yet marked gets ses:no-track."""
    if not applies(settings) or settings.ses.engagement:
        return document
    return _UNMARKED_ANCHOR.sub("<a" + NO_TRACK, document)
