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

The cache is `SHARDS` (256) files per content folder, `<paths.build>/cache/content/<hash of
the folder>-<nn>.pickle` (the build folder is git-ignored), a file's entry in the one its
name falls in, each read only when an entry in it is asked for: editing an issue rewrites
one small file, and the archive's quick rebuild (`newsletter.archive.rebuild`) reads the
few entries it needs with `lookup` instead of all 20,000. Papers and issues are stored as
plain tuples of their fields, not as objects: at 20,000 papers, unpickling objects (and
their paths) costs several times as much. The cache is only a copy: unreadable, corrupt, from another version of this code
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
import pickle
import time
import zlib
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

CACHE_VERSION = 6  # 6: issues as tuples too; 5: SHARDS files per folder; 4: papers as tuples
CACHE_DIR = "cache/content"
SHARDS = 256  # files per content folder: a lookup reads 1/256 of a folder's entries
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
}  # no paths: papers and issues are stored without theirs
# ...and the dataclasses the content modules declare (what an `Issue` holds may grow)
_CONTENT_MODULES = {m.__name__: m for m in (issues, papers)}

# A paper or an issue is stored as the tuple of its fields but `path`, which the reader gives back.
_FIELDS = {
    kind: (cls, tuple(f.name for f in dataclasses.fields(cls) if f.name != "path"))
    for kind, cls in (("paper", Paper), ("issue", Issue))
}
_KIND = {cls: kind for kind, (cls, _) in _FIELDS.items()}
_OBJECT = "object"  # the kind of a stored entry that holds the result itself (None)


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
    if type(result) is tuple:  # (kind, fields)
        return (stat, read_ns, sha, result[0], result[1], found)
    return (stat, read_ns, sha, _OBJECT, result, found)


def _decode(stored: object) -> tuple | None:
    """The entry a stored tuple holds (its paper or issue without a path yet), or None when it is malformed."""
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
    if kind in _FIELDS:
        if not (type(payload) is tuple and len(payload) == len(_FIELDS[kind][1])):
            return None
        return (stat, read_ns, sha, (kind, payload), found)
    if kind == _OBJECT and payload is None:
        return (stat, read_ns, sha, payload, found)
    return None


def _made(stored: tuple, path: Path) -> Any:
    """The paper or issue of stored (kind, fields), at `path`."""
    # The fields went in from an object this same code made (the salt says so): no need
    # to check them again in __init__, which would cost more than the rest of a cache hit.
    cls, fields = _FIELDS[stored[0]]
    made = object.__new__(cls)
    state = made.__dict__
    state.update(zip(fields, stored[1], strict=True))
    state["path"] = path
    return made


class ContentCache:
    """Reads content files through the cache; `save()` writes the entries this run used."""

    def __init__(self, folder: Path, salt: str) -> None:
        self.folder = folder
        self.salt = salt
        self._salt_bytes = salt.encode() + b"\0"
        self._folders: dict[str, str] = {}  # content folder -> the hash that names its shards
        self._shard_paths: dict[tuple[str, int], Path] = {}
        self._shard_of: dict[str, Path] = {}  # content file -> its cache file, once worked out
        self._loaded: dict[str, Any] = {}  # every stored entry of the cache files read so far
        self._shards: dict[Path, dict[str, Any]] = {}  # shard file -> its stored entries, once read
        self.used: dict[str, tuple] = {}
        self.changed = False
        self._dirty: set[Path] = set()  # the shards whose entries changed
        self.reads = 0  # files opened and parsed in this run (the rest came from the cache)

    @classmethod
    def for_settings(cls, settings: Settings) -> ContentCache:
        return cls(settings.build_dir / CACHE_DIR, _salt(settings))

    def shard(self, key: str) -> Path:
        """The cache file holding the entry of the content file `key` (its path as a string)."""
        found = self._shard_of.get(key)
        if found is not None:
            return found
        folder, _, name = key.rpartition(os.sep)  # os.path.split, without its cost 22,000 times
        prefix = self._folders.get(folder)
        if prefix is None:
            prefix = self._folders[folder] = hashlib.sha256(folder.encode()).hexdigest()[:16]
        n = zlib.crc32(name.encode()) % SHARDS
        found = self._shard_paths.get((prefix, n))
        if found is None:
            found = self._shard_paths[prefix, n] = self.folder / f"{prefix}-{n:02x}.pickle"
        self._shard_of[key] = found
        return found

    def shards(self, content_folder: str) -> list[Path]:
        """Every cache file a content folder (`papers/`, `issues/`) may have."""
        prefix = hashlib.sha256(content_folder.encode()).hexdigest()[:16]
        return [self.folder / f"{prefix}-{n:02x}.pickle" for n in range(SHARDS)]

    @property
    def entries(self) -> dict[str, tuple]:
        """Every readable entry of every cache file (reads them all)."""
        found: dict[str, tuple] = {}
        try:
            names = sorted(os.listdir(self.folder))
        except OSError:
            return found
        for name in names:
            if name.endswith(".pickle"):
                for key, stored in self._stored(self.folder / name).items():
                    entry = _decode(stored) if type(key) is str else None
                    if entry is not None and self.shard(key) == self.folder / name:
                        found[key] = entry
        return found

    def _stored(self, path: Path) -> dict[str, Any]:
        """The entries stored in one cache file, as stored (decoded on use), read once."""
        found = self._shards.get(path)
        if found is None:
            found = self._shards[path] = self._load_shard(path)
            self._loaded.update(found)
        return found

    def _load_shard(self, path: Path) -> dict[str, Any]:
        try:
            data = _Unpickler(io.BytesIO(path.read_bytes())).load()
        except Exception:  # corrupt, truncated, tampered or from an older version: start afresh
            return {}
        if not (
            isinstance(data, dict)
            and data.get("salt") == self.salt
            and type(data.get("entries")) is dict
            and type(data.get("folder")) is str
            and type(data.get("shard")) is int
            and path
            == self.folder
            / f"{hashlib.sha256(data['folder'].encode()).hexdigest()[:16]}-{data['shard']:02x}.pickle"
        ):
            return {}
        return data["entries"]

    def _entry(self, key: str) -> tuple | None:
        """The stored entry of one content file, decoded; None when missing or malformed."""
        entry = self.used.get(key)
        if entry is not None:
            return entry
        stored = self._loaded.get(key)  # most of a whole folder's are, once a few files were read
        if stored is None:
            stored = self._stored(self.shard(key)).get(key)
        return None if stored is None else _decode(stored)

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
        entry = self._entry(key)
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
                return _made(result, path) if type(result) is tuple else result
        return self._read(key, path, stat, now, problems, reader)

    def lookup(self, key: str, path: Path | None = None) -> tuple[Any, str, tuple[Problem, ...]] | None:
        """What reading the file `key` (its path as a string) gave when last read through the cache.

        (result, digest, problems), or None when there is no entry. No stat, no check: for
        a caller that knows from its own records (the file's stat and this digest) that
        the file has not changed since. `path`: the same path, when the caller has one.
        """
        entry = self._entry(key)
        if entry is None:
            return None
        result = entry[3]
        if type(result) is tuple:
            result = _made(result, path or Path(key))
        return result, entry[2], entry[4]

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
            # a paper or an issue is kept as its fields (see _made), anything else as it is
            kind = _KIND.get(type(result))
            kept = (kind, tuple(result.__dict__[f] for f in _FIELDS[kind][1])) if kind else result
            self.used[key] = (stat, now, self._hash(data), kept, tuple(found))
        return result

    def _hash(self, data: bytes | None) -> str | None:
        """The SHA-256 of the salt and a file's bytes: equal hashes, equal results of reading."""
        return None if data is None else hashlib.sha256(self._salt_bytes + data).hexdigest()

    def file_digest(self, data: bytes | None) -> str | None:
        """A file's digest from its bytes, as an entry records it (None for no bytes)."""
        return self._hash(data)

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
        self._dirty.add(self.shard(key))

    def save(self, *, complete: bool = True) -> None:
        """Write the cache files whose entries changed; best effort.

        `complete`: this run read every file of its folders, so each cache file it read
        keeps only the entries of the files read (deleted files drop out). Otherwise (a
        run that read a few files) the entries it read are added to the ones kept.
        """
        if complete and not self._dirty and sum(map(len, self._shards.values())) == len(self.used):
            return  # every entry used came from its cache file unchanged, and no other was there
        by_shard: dict[Path, dict[str, Any]] = {}
        for key, entry in self.used.items():
            by_shard.setdefault(self.shard(key), {})[key] = entry
        if complete:
            # a file came or went: its shard's entries changed
            changed = self._dirty | {
                path
                for path in by_shard.keys() | self._shards.keys()
                if by_shard.get(path, {}).keys() != self._shards.get(path, {}).keys()
            }
        else:
            changed = set(self._dirty)
        if not changed:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for path in sorted(changed):
                entries = {key: _encode(entry) for key, entry in by_shard.get(path, {}).items()}
                if not complete:
                    entries = {**self._stored(path), **entries}
                if not entries:
                    path.unlink(missing_ok=True)
                    self._shards[path] = {}
                    continue
                folder = os.path.dirname(next(iter(entries)))
                data = {
                    "salt": self.salt,
                    "folder": folder,
                    "shard": int(path.stem[-2:], 16),
                    "entries": entries,
                }
                replace_file(path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
                self._shards[path] = entries
        except OSError:
            pass  # a read-only checkout still builds; it reads every file next time
        self.changed = False
        self._dirty.clear()


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
