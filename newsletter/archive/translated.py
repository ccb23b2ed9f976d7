"""Translations and freeze records as the archive's index keeps them: recorded after a full build, read again when edited.

A translation (`<stem>.<lang>.md`, `newsletter.content.translations`) is not read
through the content cache, so the index (`newsletter.archive.sources`) records its words
itself, with the SHA-256 of its bytes: a quick rebuild (`newsletter.archive.rebuild`)
never reads an unchanged one, and reads an edited one again here. A record is
`(original, language, words, translated_from)`: plain data, checked when the index is
loaded. A translation whose `translated_from` is not its original's hash makes the full
build warn, so the index follows none that is stale.

The index vouches for a file only as the build read it: a file changed in the same tick
as the build began (`RACY_NS`) is read again and must read as the build's.
"""

from __future__ import annotations

import hashlib
import os
import time
from itertools import chain
from pathlib import Path

from newsletter.config import Settings
from newsletter.content.cache import RACY_NS
from newsletter.content.freeze import read_freeze
from newsletter.content.issues import Issue
from newsletter.content.translations import Translation, original_hash, read_translation
from newsletter.errors import Problem

__all__ = [
    "SHAPE",
    "edited_translation",
    "file_digest",
    "other_file",
    "recorded_translations",
    "stale",
    "well_formed",
]

# A translation's words that other pages show (an issue's neighbours and a language's
# index its subject and title; the tag pages nothing, but a paper's title is the paper's
# identity to a reader): an edit to any of these re-keys every page. Its other words only
# the versions in its language show.
SHAPE = {"issues": ("title", "subject"), "papers": ("title",)}

Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def file_digest(data: bytes) -> str:
    """A translation's or other file's digest: the SHA-256 of its bytes (the code that reads it is in the index's inputs)."""
    return hashlib.sha256(data).hexdigest()


def _read(path: Path | str) -> tuple[Stat, int, bytes] | None:
    """A file's stat, then when it was read, then its bytes (a change after the stat shows in the next one)."""
    try:
        st = os.stat(path)
        read_ns = time.time_ns()
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino), read_ns, data


def _racy(stat: Stat, started: int) -> bool:
    return max(stat[1], stat[2]) + RACY_NS >= started


def recorded_translations(
    settings: Settings, started: int, kinds: dict[str, tuple[Path, dict[tuple[str, str], Translation]]]
) -> dict[str, tuple] | None:
    """'kind/name' -> (original, language, words, translated_from, stat, read_ns, digest) of each translation the build read.

    `kinds`: each content folder's name -> (the folder, its translations). None when the
    index cannot follow them: one is stale (the build warned), or one changed since the
    build began and reads differently now.
    """
    found: dict[str, tuple] = {}
    for kind, (folder, items) in kinds.items():
        originals: dict[str, str] = {}
        for translation in items.values():
            original = translation.original
            if original not in originals:
                try:
                    originals[original] = original_hash(folder / f"{original}.md")
                except OSError:
                    return None
            if translation.translated_from != originals[original]:
                return None
            path = translation.path
            read = _read(path)
            if read is None or path.parent != folder:
                return None
            stat, read_ns, data = read
            if _racy(stat, started):  # perhaps changed while the build read it
                problems: list[Problem] = []
                if read_translation(settings, path, problems) != translation or problems:
                    return None
            record = (original, translation.language, dict(translation.words), translation.translated_from)
            found[f"{kind}/{path.name}"] = (*record, stat, read_ns, file_digest(data))
    return found


def other_file(path: str, started: int, frozen: dict[Path, Issue]) -> tuple[Stat, int, str] | None:
    """(stat, when read, digest) of a file other than a paper, an issue or a translation; None when the index cannot vouch for it.

    Of these the build reads freeze records only (`frozen`: by path, the issue each
    belongs to): one that may have changed since the build read it must read as the
    build's issue holds it.
    """
    read = _read(path)
    if read is None:
        return None
    stat, read_ns, data = read
    issue = frozen.get(Path(path))
    if issue is not None and _racy(stat, started):
        problems: list[Problem] = []
        if read_freeze(issue.path, problems, issue.path.name) != issue.frozen or problems:
            return None
    return stat, read_ns, file_digest(data)


def edited_translation(
    settings: Settings, kind: str, path: Path, before: tuple
) -> tuple[tuple, Stat, int, str] | None:
    """An edited translation read again: (its record, stat, when read, digest).

    None unless it reads without a problem or warning (not stale), as a translation of the
    same original into the same language, with the words of `SHAPE` unchanged.
    """
    read = _read(path)
    if read is None:
        return None
    stat, read_ns, data = read
    problems: list[Problem] = []
    now = read_translation(settings, path, problems)
    original, language, words, _ = before
    if problems or now is None or (now.original, now.language) != (original, language):
        return None
    if any(words.get(f) != now.words.get(f) for f in SHAPE[kind]):
        return None
    return (original, language, dict(now.words), now.translated_from), stat, read_ns, file_digest(data)


def stale(
    edited: set[str], records: dict[str, tuple], fresh: dict[str, tuple], folders: dict[str, Path]
) -> bool:
    """Whether a translation of an `edited` original ('kind/stem') was made from another version of it.

    `records` as the index has them, `fresh` those read again; `folders` by kind.
    """
    for key, record in records.items():
        kind = key.split("/", 1)[0]
        if f"{kind}/{record[0]}" in edited:
            translated_from = fresh.get(key, record)[3]
            if translated_from != original_hash(folders[kind] / f"{record[0]}.md"):
                return True
    return False


def well_formed(records: object) -> bool:
    """Whether an index's records of translations are well formed: 'kind/name' -> (original, language, words, translated_from).

    Checked for thousands at once by the types they hold, not record by record.
    """
    if type(records) is not dict:
        return False
    values = list(records.values())
    if {type(r) for r in values} - {tuple} or {len(r) for r in values} - {4}:
        return False
    if not values:
        return True
    originals, languages, words, made_from = zip(*values, strict=True)
    if {type(x) for x in chain(records, originals, languages, made_from)} - {str}:
        return False
    if {type(w) for w in words} - {dict}:
        return False
    return not {type(x) for w in words for x in chain(w, w.values())} - {str}
