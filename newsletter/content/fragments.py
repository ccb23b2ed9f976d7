"""The fragment cache: what rendering a text gave in earlier builds (markdown as HTML, feed entries), kept between builds.

The archive asks it for each text it renders (`newsletter.archive.pages`,
`newsletter.archive.rendering`), so a build parses only the texts that changed since the
last one. Like the content cache (`newsletter.content.cache`) it is only a copy under
the git-ignored build folder: unreadable, corrupt or made by another renderer, it is
ignored and filled again.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from newsletter.atomic_files import replace_file
from newsletter.config import Settings

FRAGMENT_SHARDS = 4096  # files of the fragment cache: a fragment is in the one its key's first digits name
_SHARD_DIGITS = 3  # hex digits: 16**3 == FRAGMENT_SHARDS
FRAGMENTS_DIR = "cache/fragments"  # under paths.build; not under CACHE_DIR, whose every file is a shard


class _NothingUnpickler(pickle.Unpickler):
    """Fragments are a dict of strings: no class at all may be unpickled."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the fragment cache")


class FragmentCache:
    """What rendering a text gave in earlier builds (markdown as HTML, feed entries), keyed by a digest.

    A fragment's key is the SHA-256 of its kind and source; the fragments are kept in
    `FRAGMENT_SHARDS` (4,096) files by the key's first three hex digits, so a one-issue
    rebuild, which asks for a few dozen, reads and rewrites a few dozen small files (about
    10 KB at 2,000 issues) instead of all of them: in 256 files, reading the few dozen it
    needs cost as much as rendering its pages. The files
    live in a folder named after `version()`, which the caller makes from everything
    besides the source that decides the result (the renderer's code and its libraries'
    versions): a new renderer finds nothing and starts afresh. `version` is only called
    on the first lookup, so a build that renders nothing never pays for it. Like the
    content cache it is only a copy: an unreadable or malformed file is ignored.
    """

    def __init__(self, folder: Path, version: Callable[[], str]) -> None:
        self.folder = folder
        self._version = version
        self._current: Path | None = None  # the version's folder, known on the first lookup
        self._shards: dict[str, dict[str, str]] = {}  # read so far
        self._dirty: set[str] = set()  # shards with fragments rendered in this run
        self.used: dict[str, str] = {}
        self.added = 0  # fragments rendered in this run (the rest came from the files)
        self.new: dict[str, str] = {}  # ...and what they are
        self._elsewhere: set[str] = set()  # keys other processes of this build asked for (`merge`)
        # (kind, source) -> fragment, for this run: a paper's abstract is asked for by its issue's
        # page, feed entry and its own page, and hashing it each time cost more than the lookup
        self._asked: dict[tuple[str, str], str] = {}

    @classmethod
    def for_settings(cls, settings: Settings, version: Callable[[], str]) -> FragmentCache:
        return cls(settings.build_dir / FRAGMENTS_DIR, version)

    @staticmethod
    def key(kind: str, source: str) -> str:
        return hashlib.sha256(f"{kind}\0{source}".encode()).hexdigest()[:32]

    @property
    def current(self) -> Path:
        if self._current is None:
            self._current = self.folder / hashlib.sha256(self._version().encode()).hexdigest()[:16]
        return self._current

    def get(self, kind: str, source: str, render: Callable[[], str]) -> str:
        """The fragment of `source` of this kind: from this run, an earlier one, or `render()`."""
        found = self._asked.get((kind, source))
        if found is not None:
            return found
        key = self.key(kind, source)
        found = self.used.get(key)
        if found is None:
            shard = self._shard(key[:_SHARD_DIGITS])
            found = shard.get(key)
            if found is None:
                found = shard[key] = self.new[key] = render()
                self._dirty.add(key[:_SHARD_DIGITS])
                self.added += 1
            self.used[key] = found
        self._asked[kind, source] = found
        return found

    def _shard(self, name: str) -> dict[str, str]:
        found = self._shards.get(name)
        if found is None:
            found = self._shards[name] = self._load(self.current / f"{name}.pickle")
        return found

    def _files(self) -> list[str]:
        """The names of the shards the version's folder holds a file for."""
        try:
            return [
                n[:-7]
                for n in os.listdir(self.current)
                if n.endswith(".pickle") and len(n) == 7 + _SHARD_DIGITS
            ]
        except OSError:
            return []

    @staticmethod
    def _load(path: Path) -> dict[str, str]:
        try:
            data = _NothingUnpickler(io.BytesIO(path.read_bytes())).load()
        except Exception:  # missing, corrupt, truncated or tampered: render again
            return {}
        if not (type(data) is dict and all(type(k) is str and type(v) is str for k, v in data.items())):
            return {}
        return data

    def merge(self, used: Iterable[str], new: dict[str, str]) -> None:
        """What another process of this build (a worker rendering pages) asked for and rendered."""
        for key, value in new.items():
            self._shard(key[:_SHARD_DIGITS])[key] = value
            self._dirty.add(key[:_SHARD_DIGITS])
        self.added += len(new)
        self._elsewhere.update(used)

    def save(self, *, prune: bool = False) -> None:
        """Write the shards that gained fragments in this run; best effort.

        `prune`: this run asked for every fragment the site needs, so every shard is
        written with only those (the fragments of texts since edited or removed go), and
        earlier renderers' folders are removed.
        """
        if prune:
            # every file there is (one holding only fragments no page asked for is emptied)
            # and every file a fragment asked for goes in; there are few of either in a small site
            kept: dict[str, dict[str, str]] = {name: {} for name in self._files()}
            for key in self.used.keys() | self._elsewhere:
                kept.setdefault(key[:_SHARD_DIGITS], {})
            for key, value in self.used.items():
                kept[key[:_SHARD_DIGITS]][key] = value
            for key in self._elsewhere - self.used.keys():
                value = self._shard(key[:_SHARD_DIGITS]).get(key)
                if value is not None:
                    kept[key[:_SHARD_DIGITS]][key] = value
            # a shard is written when it gained fragments or holds ones no page asked for
            stale = {name for name, shard in kept.items() if shard.keys() != self._shard(name).keys()}
            changed = self._dirty | stale
        else:
            kept, changed = self._shards, self._dirty
        try:
            if changed:
                self.current.mkdir(parents=True, exist_ok=True)
            for name in sorted(changed):
                # sorted: the same fragments give the same file, in whatever order they came
                data = pickle.dumps(dict(sorted(kept[name].items())), pickle.HIGHEST_PROTOCOL)
                replace_file(self.current / f"{name}.pickle", data)
            if prune and self.folder.is_dir():
                for other in self.folder.iterdir():
                    if other != self.current and other.is_dir():
                        for old in other.glob("*.pickle"):
                            old.unlink()  # an earlier renderer's
                        other.rmdir()
        except OSError:
            pass  # a read-only checkout still builds; it renders every text next time
        self._shards = kept
        self._dirty.clear()
        self.added = 0
        self.new.clear()
        self._elsewhere.clear()
