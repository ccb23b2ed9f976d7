"""The content cache: what reading each paper and issue file gave last time, so a rebuild reads only changed files.

One entry per file holds its size, mtime and ctime (in nanoseconds), inode and SHA-256
with what reading it produced: the `Paper` or `Issue` (or None) and every problem and
warning. A file whose size, times and inode all match is taken from the cache without
being opened; one whose size matches but not the rest is hashed, and parsed again only
when the hash differs.

Correctness first. Timestamps have a granularity (2 s on FAT, 1 s on older file systems),
so an edit made in the same tick as the read it follows keeps size and mtime: git's
"racily clean" case. An entry whose file was modified less than `RACY_NS` before it was
read is therefore checked by hash every time until a read happens well after the edit;
a matching hash still saves the parsing, which is where reading costs.

The cache is one file, `<paths.build>/cache/content.pickle` (the build folder is
git-ignored). It is only a copy: unreadable, corrupt, from another version of this
code or another setting that changes what a file means, it is ignored and rebuilt. It
is unpickled with an allow-list of the few classes it holds, so a tampered file cannot
run code.
"""

from __future__ import annotations

import copyreg
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

CACHE_VERSION = 3
CACHE_FILE = "cache/content.pickle"
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


def _no_path() -> None:
    """What a stored `Path` unpickles to: the caller's own `Path` object is put back on a hit
    (rebuilding thousands of `Path`s would be most of what unpickling costs)."""
    return None


def _reduce_path(path: pathlib.PurePath) -> tuple:
    return (_no_path, ())


_ALLOWED[("newsletter.content.cache", "_no_path")] = _no_path


class _Unpickler(pickle.Unpickler):
    """Unpickles only the allowed classes."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the content cache")
        return found


def _dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {
        **copyreg.dispatch_table,
        pathlib.PosixPath: _reduce_path,
        pathlib.WindowsPath: _reduce_path,
    }
    pickler.dump(value)
    return buffer.getvalue()


def _salt(settings: Settings) -> str:
    """What, besides a file's bytes, decides what reading it gives: this code and its settings."""
    code = b"".join(Path(m.__file__).read_bytes() for m in (front_matter, schema, papers, issues))
    parts = (CACHE_VERSION, __version__, str(settings.root), settings.language, code)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


class ContentCache:
    """Reads content files through the cache; `save()` writes the entries this run used."""

    def __init__(self, path: Path, salt: str) -> None:
        self.path = path
        self.salt = salt
        self.entries: dict[str, tuple] = self._load()
        self.used: dict[str, tuple] = {}
        self.changed = False
        self.reads = 0  # files opened and parsed in this run (the rest came from the cache)

    @classmethod
    def for_settings(cls, settings: Settings) -> ContentCache:
        return cls(settings.build_dir / CACHE_FILE, _salt(settings))

    def _load(self) -> dict[str, tuple]:
        try:
            data = _Unpickler(io.BytesIO(self.path.read_bytes())).load()
        except FileNotFoundError:
            return {}
        except Exception:  # corrupt, truncated, tampered or from an older version: start afresh
            return {}
        if not (
            isinstance(data, dict) and data.get("salt") == self.salt and isinstance(data.get("entries"), dict)
        ):
            return {}
        return data["entries"]

    def read(
        self, path: Path, problems: list[Problem], reader: Callable[[list[Problem]], T | None]
    ) -> T | None:
        """What `reader(problems)` gives for `path`, from the cache when the file has not changed."""
        key = str(path)
        now = _now()
        try:
            st = os.stat(path)
        except OSError:
            return self._read(key, path, None, now, problems, reader)
        # ctime too: no program can set it back, so an edit followed by `touch -d`, `cp -p`
        # or os.utime to the old mtime still shows (a write, chmod or rename moves it)
        stat = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        entry = self.entries.get(key)
        if entry is not None and _valid(entry):
            if entry[0] != stat or max(stat[1], stat[2]) + RACY_NS >= entry[1]:
                # changed, or racy: the same size and hash still spare the parsing
                same = entry[0][0] == stat[0] and _sha256(path) == entry[2]
                entry = (stat, now, *entry[2:]) if same else None
                self.changed |= same
            if entry is not None:
                result = entry[3]
                if result is not None:
                    object.__setattr__(result, "path", path)  # stored without it (see _no_path)
                self.used[key] = entry
                problems.extend(entry[4])
                return result
        return self._read(key, path, stat, now, problems, reader)

    def _read(
        self, key: str, path: Path, stat: tuple | None, now: int, problems: list[Problem], reader: Callable
    ) -> Any:
        self.reads += 1
        self.changed = True
        found: list[Problem] = []
        # The hash is of the bytes before parsing: a file edited during the read is seen as
        # changed next time (its hash differs), never cached with a stale result.
        data = _read_bytes(path) if stat is not None else None
        result = reader(found)
        problems.extend(found)
        if data is not None and stat is not None:
            self.used[key] = (stat, now, hashlib.sha256(data).hexdigest(), result, tuple(found))
        return result

    def save(self) -> None:
        """Write the entries of the files read in this run (deleted files drop out); best effort."""
        if not self.changed and self.used.keys() == self.entries.keys():
            return
        data = _dumps({"salt": self.salt, "entries": self.used})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.path, data)
        except OSError:
            pass  # a read-only checkout still builds; it just reads every file next time
        self.entries = dict(self.used)
        self.changed = False


def _sha256(path: Path) -> str | None:
    data = _read_bytes(path)
    return None if data is None else hashlib.sha256(data).hexdigest()


def _valid(entry: object) -> bool:
    return (
        isinstance(entry, tuple)
        and len(entry) == 5
        and isinstance(entry[0], tuple)
        and isinstance(entry[1], int)
        and (entry[3] is None or isinstance(entry[3], (Paper, Issue)))
        and isinstance(entry[4], tuple)
        and all(isinstance(p, Problem) for p in entry[4])
    )


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
