"""What an archive page is made from: the keys of its inputs, the digest of the code that renders it, and the memo kept between builds.

A page's key is a `fingerprint` of everything its bytes depend on, the code included
(`source_digest` of the whole package): `newsletter.archive.site` renders a page again
only when its key changed. `renderer_version` names what, besides a text, decides the
HTML its markdown gives, for the fragment cache (`newsletter.content.fragments`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # the newsletter package, whose code makes the pages


@functools.cache
def source_digest(package: Path) -> str:
    """A hash of every module of the package, computed once per process.

    Pages depend on more code than the archive's own (plural rules and dates in
    `mail/locale.py`, URLs in `content/issues.py`, markdown in `mail/render.py`, ...):
    hashing all of it (about 1 MB, a few milliseconds) cannot miss one, whereas a list of
    the modules that matter would go stale as the code moves.
    """
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def renderer_version() -> str:
    """What, besides a text, decides the HTML its markdown gives: this code and the libraries it uses."""
    import markdown_it
    import nh3

    # their own version attributes: importlib.metadata would cost more than the import
    return fingerprint(source_digest(PACKAGE), markdown_it.__version__, getattr(nh3, "__version__", "?"))


def fingerprint(*parts: object) -> str:
    """A short hash of the parts' reprs: the key of a page's inputs."""
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:32]


class Memo:
    """Markdown and fragments rendered once per text, kept in the manifest between builds.

    The index lists every issue with an excerpt of its introduction: the excerpts are kept,
    so a one-issue rebuild does not parse thousands of introductions again. Feed entries
    and markdown as HTML are kept in the build folder's fragment cache instead
    (`newsletter.content.fragments.FragmentCache`): there are too many for the manifest.
    """

    def __init__(self, stored: dict[str, str]) -> None:
        self.stored = stored
        self.used: dict[str, str] = {}

    PERSISTENT = ("excerpt",)  # kept between builds; everything else within one build

    def kept(self) -> dict[str, str]:
        return {k: v for k, v in self.used.items() if k.startswith(self.PERSISTENT)}

    @staticmethod
    def key(kind: str, source: str) -> str:
        return kind + ":" + hashlib.sha256(f"{kind}\0{source}".encode()).hexdigest()[:32]

    def keep(self, kind: str, source: str) -> None:
        """Carry a stored entry over to the next build although no page asked for it this time."""
        key = self.key(kind, source)
        if key not in self.used and key in self.stored:
            self.used[key] = self.stored[key]

    def get(self, kind: str, source: str, compute: Callable[[], str]) -> str:
        key = self.key(kind, source)
        value = self.used.get(key)
        if value is None:
            value = self.stored.get(key)
            if value is None:
                value = compute()
            self.used[key] = value
        return value
