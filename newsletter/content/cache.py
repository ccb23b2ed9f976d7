"""The content cache: what reading each paper and issue file gave last time, so a rebuild reads only changed files.

One entry per file holds its size, mtime and ctime (in nanoseconds), inode and SHA-256
(of the salt below and the file's bytes: the file's digest) with what reading it
produced: the `Paper` or `Issue` (or None) and every problem and warning. A file
whose size, times and inode all match is taken from the cache without being opened;
one whose size matches but not the rest is hashed, and parsed again only when the hash
differs.

Correctness first. Timestamps have a granularity (2 s on FAT, 1 s on older file systems),
so an edit made in the same tick as the read it follows keeps size and mtime: git's
"racily clean" case. An entry whose file was modified less than `RACY_NS` before it was
read is therefore checked by hash every time until a read happens well after the edit;
a matching hash still saves the parsing, which is where reading costs.

The cache is one file per content folder, `<paths.build>/cache/content/<hash of the
folder>.pickle` (the build folder is git-ignored), so editing an issue rewrites the
issues' file and leaves the papers' alone. Papers are stored as plain tuples of their
fields, not as objects: at 20,000 papers, unpickling objects costs several times as
much. The cache is only a copy: unreadable, corrupt, from another version of this code
or another setting that changes what a file means, it is ignored and rebuilt. It is
unpickled with an allow-list of the few classes it holds, so a tampered file cannot run
code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import os
import pathlib
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from newsletter import __version__
from newsletter.atomic_files import replace_file
from newsletter.config import Settings
from newsletter.content import front_matter, issues, papers, schema
from newsletter.content.issues import Audience, Issue, Selection
from newsletter.content.papers import Paper
from newsletter.errors import Problem

CACHE_VERSION = 4  # 4: one file per folder, papers as tuples
CACHE_DIR = "cache/content"
RACY_NS = 2_000_000_000  # the coarsest common mtime granularity (FAT): 2 s

T = TypeVar("T")
_now = time.time_ns  # the clock, in one place

# What an entry may hold; nothing else is unpickled.
_ALLOWED = {
    ("newsletter.content.papers", "Paper"): Paper,
    ("newsletter.content.issues", "Issue"): Issue,
    ("newsletter.content.issues", "Selection"): Selection,
    ("newsletter.content.issues", "Audience"): Audience,
    ("newsletter.errors", "Problem"): Problem,
    ("datetime", "date"): dt.date,
    ("datetime", "datetime"): dt.datetime,  # an issue's send_at, with its zone:
    ("datetime", "timezone"): dt.timezone,
    ("datetime", "timedelta"): dt.timedelta,
    ("pathlib", "PosixPath"): pathlib.PosixPath,
    ("pathlib", "WindowsPath"): pathlib.WindowsPath,
    ("pathlib", "Path"): pathlib.Path,
    ("pathlib._local", "PosixPath"): pathlib.PosixPath,
    ("pathlib._local", "WindowsPath"): pathlib.WindowsPath,
}
# ...and the dataclasses the content modules declare (what an `Issue` holds may grow)
_CONTENT_MODULES = {m.__name__: m for m in (issues, papers)}

# A paper is stored as the tuple of its fields but `path`, which the reader gives back.
_PAPER_FIELDS = tuple(f.name for f in dataclasses.fields(Paper) if f.name != "path")
_PAPER = "paper"  # the kind of a stored entry: a paper's fields...
_OBJECT = "object"  # ...or the result itself (an `Issue`, or None)


class _Unpickler(pickle.Unpickler):
    """Unpickles only the allowed classes."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None and module in _CONTENT_MODULES:
            candidate = getattr(_CONTENT_MODULES[module], name, None)
            if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
                found = candidate
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the content cache")
        return found


def _salt(settings: Settings) -> str:
    """What, besides a file's bytes, decides what reading it gives: this code and its settings."""
    code = b"".join(Path(m.__file__).read_bytes() for m in (front_matter, schema, papers, issues))
    parts = (CACHE_VERSION, __version__, str(settings.root), settings.language, code)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _encode(entry: tuple) -> tuple:
    stat, read_ns, sha, result, found = entry
    return (stat, read_ns, sha, _PAPER if type(result) is tuple else _OBJECT, result, found)


def _decode(stored: object) -> tuple | None:
    """The entry a stored tuple holds (its paper without a path yet), or None when it is malformed."""
    if not (type(stored) is tuple and len(stored) == 6):
        return None
    stat, read_ns, sha, kind, payload, found = stored
    if not (
        type(stat) is tuple
        and len(stat) == 4
        and type(read_ns) is int
        and type(sha) is str
        and type(found) is tuple
        and all(type(p) is Problem for p in found)
    ):
        return None
    if kind == _PAPER:
        if not (type(payload) is tuple and len(payload) == len(_PAPER_FIELDS)):
            return None
        return (stat, read_ns, sha, payload, found)
    if kind == _OBJECT and (payload is None or type(payload) is Issue):
        return (stat, read_ns, sha, payload, found)
    return None


def _paper(values: tuple, path: Path) -> Paper:
    # The fields went in from a Paper this same code made (the salt says so): no need to
    # check them again in __init__, which would cost more than the rest of a cache hit.
    paper = object.__new__(Paper)
    state = paper.__dict__
    state.update(zip(_PAPER_FIELDS, values, strict=True))
    state["path"] = path
    return paper


class ContentCache:
    """Reads content files through the cache; `save()` writes the entries this run used."""

    def __init__(self, folder: Path, salt: str) -> None:
        self.folder = folder
        self.salt = salt
        self._salt_bytes = salt.encode() + b"\0"
        self.entries: dict[str, tuple] = self._load()
        self.used: dict[str, tuple] = {}
        self.changed = False
        self._dirty: set[str] = set()  # the content folders whose entries changed
        self.reads = 0  # files opened and parsed in this run (the rest came from the cache)

    @classmethod
    def for_settings(cls, settings: Settings) -> ContentCache:
        return cls(settings.build_dir / CACHE_DIR, _salt(settings))

    def shard(self, content_folder: str) -> Path:
        """The cache file of one content folder (`papers/`, `issues/`)."""
        return self.folder / (hashlib.sha256(content_folder.encode()).hexdigest()[:16] + ".pickle")

    def _load(self) -> dict[str, tuple]:
        entries: dict[str, tuple] = {}
        try:
            names = sorted(os.listdir(self.folder))
        except OSError:
            return entries
        for name in names:
            if name.endswith(".pickle"):
                entries.update(self._load_shard(self.folder / name))
        return entries

    def _load_shard(self, path: Path) -> dict[str, tuple]:
        try:
            data = _Unpickler(io.BytesIO(path.read_bytes())).load()
        except Exception:  # corrupt, truncated, tampered or from an older version: start afresh
            return {}
        if not (
            isinstance(data, dict)
            and data.get("salt") == self.salt
            and isinstance(data.get("entries"), dict)
            and path == self.shard(str(data.get("folder")))
        ):
            return {}
        entries = {}
        for key, stored in data["entries"].items():
            entry = _decode(stored)
            if entry is not None and type(key) is str:  # a malformed entry is read again
                entries[key] = entry
        return entries

    def read(
        self, path: Path, problems: list[Problem], reader: Callable[[list[Problem]], T | None]
    ) -> T | None:
        """What `reader(problems)` gives for `path`, from the cache when the file has not changed."""
        key = str(path)
        now = _now()
        try:
            st = os.stat(key)
        except OSError:
            return self._read(key, path, None, now, problems, reader)
        # ctime too: no program can set it back, so an edit followed by `touch -d`, `cp -p`
        # or os.utime to the old mtime still shows (a write, chmod or rename moves it)
        stat = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        entry = self.entries.get(key)
        if entry is not None:
            if entry[0] != stat or max(stat[1], stat[2]) + RACY_NS >= entry[1]:
                # changed, or racy: the same size and hash still spare the parsing
                same = entry[0][0] == stat[0] and self._hash(_read_bytes(path)) == entry[2]
                entry = (stat, now, *entry[2:]) if same else None
                if same:
                    self._touch(key)
            if entry is not None:
                self.used[key] = entry
                problems.extend(entry[4])
                result = entry[3]
                return _paper(result, path) if type(result) is tuple else result
        return self._read(key, path, stat, now, problems, reader)

    def _read(
        self, key: str, path: Path, stat: tuple | None, now: int, problems: list[Problem], reader: Callable
    ) -> Any:
        self.reads += 1
        self._touch(key)
        found: list[Problem] = []
        # The hash is of the bytes before parsing: a file edited during the read is seen as
        # changed next time (its hash differs), never cached with a stale result.
        data = _read_bytes(path) if stat is not None else None
        result = reader(found)
        problems.extend(found)
        if data is not None and stat is not None:
            # a paper is kept as its fields (see _paper), anything else as it is
            kept = tuple(result.__dict__[f] for f in _PAPER_FIELDS) if type(result) is Paper else result
            self.used[key] = (stat, now, self._hash(data), kept, tuple(found))
        return result

    def _hash(self, data: bytes | None) -> str | None:
        """The SHA-256 of the salt and a file's bytes: equal hashes, equal results of reading."""
        return None if data is None else hashlib.sha256(self._salt_bytes + data).hexdigest()

    def digest(self, path: Path) -> str | None:
        """What identifies the result of reading `path` in this run (None unless read through here).

        Reading is a function of the file's bytes, this code and the settings in the salt,
        so equal digests mean equal results: a page made from a paper can be keyed by its
        digest instead of a fingerprint of every field.
        """
        entry = self.used.get(str(path))
        return None if entry is None else entry[2]

    def _touch(self, key: str) -> None:
        self.changed = True
        self._dirty.add(os.path.dirname(key))

    def save(self) -> None:
        """Write the entries of the files read in this run (deleted files drop out); best effort.

        Only the files of folders where something changed are written again.
        """
        if self.used.keys() != self.entries.keys():
            # a file came or went: its folder's entries changed
            self._dirty.update(os.path.dirname(k) for k in self.used.keys() ^ self.entries.keys())
        if not self._dirty:
            return
        by_folder: dict[str, dict[str, tuple]] = {folder: {} for folder in self._dirty}
        for key, entry in self.used.items():
            folder = os.path.dirname(key)
            if folder in by_folder:
                by_folder[folder][key] = entry
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for folder, entries in sorted(by_folder.items()):
                stored = {key: _encode(entry) for key, entry in entries.items()}
                data = {"salt": self.salt, "folder": folder, "entries": stored}
                replace_file(self.shard(folder), pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            pass  # a read-only checkout still builds; it just reads every file next time
        self.entries = dict(self.used)
        self.changed = False
        self._dirty.clear()


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


# ---------------------------------------------------------------------------
# Rendered fragments

FRAGMENTS_DIR = "cache/fragments"  # under paths.build; not under CACHE_DIR, whose every file is a shard


class _NothingUnpickler(pickle.Unpickler):
    """Fragments are a dict of strings: no class at all may be unpickled."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the fragment cache")


class FragmentCache:
    """What rendering a text gave in earlier builds (markdown as HTML, feed entries), keyed by a digest.

    A fragment's key is the SHA-256 of its kind and source; the fragments are kept in 256
    files by the key's first two hex digits, so a one-issue rebuild, which asks for a few
    dozen, reads and rewrites a few dozen small files instead of all of them. The files
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
        key = self.key(kind, source)
        found = self.used.get(key)
        if found is None:
            shard = self._shard(key[:2])
            found = shard.get(key)
            if found is None:
                found = shard[key] = render()
                self._dirty.add(key[:2])
                self.added += 1
            self.used[key] = found
        return found

    def _shard(self, name: str) -> dict[str, str]:
        found = self._shards.get(name)
        if found is None:
            found = self._shards[name] = self._load(self.current / f"{name}.pickle")
        return found

    @staticmethod
    def _load(path: Path) -> dict[str, str]:
        try:
            data = _NothingUnpickler(io.BytesIO(path.read_bytes())).load()
        except Exception:  # missing, corrupt, truncated or tampered: render again
            return {}
        if not (type(data) is dict and all(type(k) is str and type(v) is str for k, v in data.items())):
            return {}
        return data

    def save(self, *, prune: bool = False) -> None:
        """Write the shards that gained fragments in this run; best effort.

        `prune`: this run asked for every fragment the site needs, so every shard is
        written with only those (the fragments of texts since edited or removed go), and
        earlier renderers' folders are removed.
        """
        if prune:
            kept: dict[str, dict[str, str]] = {f"{n:02x}": {} for n in range(256)}
            for key, value in self.used.items():
                kept[key[:2]][key] = value
            # a shard is written when it gained fragments or holds ones no page asked for
            stale = {name for name, shard in kept.items() if shard.keys() != self._shard(name).keys()}
            changed = self._dirty | stale
        else:
            kept, changed = self._shards, self._dirty
        try:
            if changed:
                self.current.mkdir(parents=True, exist_ok=True)
            for name in sorted(changed):
                replace_file(
                    self.current / f"{name}.pickle", pickle.dumps(kept[name], pickle.HIGHEST_PROTOCOL)
                )
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
