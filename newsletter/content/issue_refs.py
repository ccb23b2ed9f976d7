"""Issue references: how every command turns what an editor typed into one issue's slug.

An issue's slug is its file stem, `2026-03-17-tokenizers`. Editors type less: the short
name `issue new` was given (`tokenizers`), a unique prefix of either (`2026-03-17`,
`token`), a file name or a path. One resolver serves every command, so a name that
works for `build` works for `send` and `status` too; a name that matches nothing gets a
did-you-mean, one that matches several lists them. `papers tag` and `papers note`
resolve paper ids the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from newsletter.content.front_matter import closest
from newsletter.content.translations import is_translation
from newsletter.errors import ContentError

DATED_STEM = re.compile(r"^\d{4}-\d{2}-\d{2}-(?P<short>.+)$")


def short_name(slug: str) -> str:
    """The name `issue new` was given: the slug without its leading date."""
    match = DATED_STEM.match(slug)
    return match["short"] if match else slug


def resolve_slug(ref: str, slugs: Iterable[str], kind: str = "issue") -> str:
    """The one slug in `slugs` that `ref` names, or a ContentError saying why not.

    Tried in order, the first that finds exactly one wins: the exact slug (or a path or
    file name whose stem is one), the exact short name, a prefix of the slug, a prefix
    of the short name.
    """
    known = list(dict.fromkeys(slugs))
    name = Path(ref.strip()).name.removesuffix(".md") if ref.strip() else ""
    if name in known:
        return name
    if not name:
        raise ContentError(
            f"{ref!r}: expected {'an' if kind[0] in 'aeiou' else 'a'} {kind} name, got an empty one"
        )
    for candidates in (
        [s for s in known if short_name(s) == name],
        [s for s in known if s.startswith(name)],
        [s for s in known if short_name(s).startswith(name)],
    ):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise ContentError(
                f"{ref}: matches {len(candidates)} {kind}s ({', '.join(candidates)}); "
                "expected a unique slug or prefix\n\nType more of the slug."
            )
    guess = _closest(name, known)
    hint = f"; did you mean {guess!r}?" if guess else ""
    listed = f" (known {kind}s: {', '.join(known) or 'none'})" if len(known) <= 20 else ""
    raise ContentError(f"{ref}: no such {kind}{hint}{listed}")


def _closest(name: str, known: list[str]) -> str | None:
    """A did-you-mean from the full slugs, else from the short names."""
    by_short = {short_name(s): s for s in known}
    guess = closest(name, known) or closest(name, list(by_short))
    return by_short.get(guess, guess) if guess else None


def issue_stems(issues_dir: Path) -> list[str]:
    """Every issue file's stem in the folder, sorted (whether or not the file reads cleanly).

    Translations (`<slug>.<lang>.md`) are not issues: a ref that names an issue by prefix
    must not also match its translations.
    """
    if not issues_dir.is_dir():
        return []
    return sorted(p.stem for p in issues_dir.glob("*.md") if not is_translation(p))
