"""The static archive site: building it (site, pages, feeds), previewing it (server), publishing it (publish)."""

from newsletter.errors import NewsletterError


class ArchiveError(NewsletterError):
    """The site cannot be built into, or served from, the chosen folder."""
