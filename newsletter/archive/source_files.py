"""The content folders' entries as a built site last saw them: each file's stat, when it was read, and its digest.

Part of the archive's index (`newsletter.archive.sources`): packed per folder (names,
stats, times read, digests) so that 22,000 entries unpickle and pickle as a few objects,
and so that a rebuild compares the stats of a whole folder at once. `Stale` is raised
wherever the index cannot vouch for the site.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
from array import array
from pathlib import Path
from typing import Any

from newsletter.content.cache import RACY_NS

_STAT = 4  # numbers per file: size, mtime_ns, ctime_ns, inode
_DIGEST = 32  # bytes of a SHA-256
# a file's digest is the content cache's (a paper or an issue) or the SHA-256 of its bytes
CACHED, PLAIN = 1, 2


class Stale(Exception):
    """The index cannot vouch for the site: build it the full, keyed way."""


class SourceFiles:
    """The entries of the content folders as last seen: stat, when read, and digest.

    Packed per folder (names, stats, times read, digests) so that 22,000 entries unpickle
    and pickle as a few objects, not 22,000 tuples, and so that a rebuild compares the
    stats of a whole folder at once (`moved`). Each folder's own stat is kept too: while
    it is the same (and was not taken in the same tick as a change), no entry came or
    went, and the folder need not be listed.
    """

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.stats: dict[str, array] = {}  # _STAT numbers per file
        self.read: dict[str, array] = {}  # when each file was read (ns)
        self.digests: dict[str, bytearray] = {}  # 32 bytes per file, zeros for no digest
        self.has: dict[str, bytearray] = {}  # per file: 0 no digest, CACHED or PLAIN
        # files whose stat was taken in the tick of their last change ("racy", as in
        # `newsletter.content.cache`): their stat cannot vouch for their bytes
        self.racy: dict[str, set[int]] = {}
        self.folders: dict[str, tuple[int, ...]] = {}  # mtime_ns, ctime_ns, inode, when it was read
        self.changed: dict[str, tuple] = {}  # 'kind/name' -> what `set` recorded (the journal's)
        self.changed_folders: dict[str, tuple[int, ...]] = {}
        self._at: dict[str, dict[str, int]] = {}  # folder -> name -> position, made when first asked

    def add(
        self, kind: str, name: str, stat: tuple[int, ...], read_ns: int, digest: str | None, has: int = 0
    ) -> None:
        """Record one more file, its digest `CACHED` or `PLAIN` (OverflowError for a time before 1970: no index then)."""
        names = self.names.setdefault(kind, [])
        if _racy(stat, read_ns):
            self.racy.setdefault(kind, set()).add(len(names))
        names.append(name)
        self._at.pop(kind, None)
        self.stats.setdefault(kind, array("Q")).extend(stat)
        self.read.setdefault(kind, array("Q")).append(read_ns)
        self.digests.setdefault(kind, bytearray()).extend(bytes.fromhex(digest) if digest else bytes(_DIGEST))
        self.has.setdefault(kind, bytearray()).append(has if digest else 0)

    def set_folder(self, kind: str, stat: tuple[int, ...], read_ns: int) -> None:
        if len(stat) != 3:
            raise Stale
        self.folders[kind] = self.changed_folders[kind] = (*stat, read_ns)

    def _position(self, kind: str, name: str) -> int | None:
        at = self._at.get(kind)
        if at is None:
            at = self._at[kind] = {n: i for i, n in enumerate(self.names.get(kind, ()))}
        return at.get(name)

    def set(self, kind: str, name: str, stat: tuple[int, ...], read_ns: int, digest: str) -> None:
        n = self._position(kind, name)
        if n is None or not self.has[kind][n] or len(stat) != _STAT:
            raise Stale  # only a recorded file's record changes
        self.changed[f"{kind}/{name}"] = (tuple(stat), read_ns, digest)
        self.stats[kind][n * _STAT : (n + 1) * _STAT] = array("Q", stat)
        self.read[kind][n] = read_ns
        self.digests[kind][n * _DIGEST : (n + 1) * _DIGEST] = bytes.fromhex(digest)
        racy = self.racy.setdefault(kind, set())
        if _racy(stat, read_ns):
            racy.add(n)
        else:
            racy.discard(n)

    @staticmethod
    def stat_at(stats: array, n: int) -> tuple[int, ...]:
        """The stat of file `n` in a folder's packed stats."""
        return tuple(stats[n * _STAT : (n + 1) * _STAT])

    def plain(self, kind: str, n: int) -> bool:
        """Whether file `n`'s digest is the SHA-256 of its bytes (a translation or another file), not the content cache's."""
        return self.has[kind][n] == PLAIN

    def digest(self, kind: str, name: str) -> str | None:
        """A paper's or issue's digest as recorded; None for another file or an unknown name."""
        n = self._position(kind, name)
        if n is None or not self.has[kind][n]:
            return None
        return self.digests[kind][n * _DIGEST : (n + 1) * _DIGEST].hex()

    def moved(self, kind: str, stats: array) -> list[int]:
        """The positions of the files whose stat is not the recorded one, or cannot vouch for them.

        `stats`: every file's `_STAT` numbers now, in the order of `names`. The folders
        are compared whole and then block by block, not file by file: at 20,000 files
        the comparisons in Python cost as much as the stats.
        """
        recorded = self.stats[kind]
        if len(stats) != len(recorded):
            raise Stale
        moved = set(self.racy.get(kind, ()))
        if stats != recorded:
            now, then = stats.tobytes(), recorded.tobytes()
            size = _STAT * stats.itemsize  # bytes per file
            block = 64 * size
            for start in range(0, len(now), block):
                if now[start : start + block] != then[start : start + block]:
                    for at in range(start, min(start + block, len(now)), size):
                        if now[at : at + size] != then[at : at + size]:
                            moved.add(at // size)
        return sorted(moved)

    def __len__(self) -> int:
        return sum(len(names) for names in self.names.values())

    def packed(self) -> dict[str, Any]:
        return {
            kind: (
                names,
                self.stats[kind].tobytes(),
                self.read[kind].tobytes(),
                bytes(self.digests[kind]),
                bytes(self.has[kind]),
                tuple(sorted(self.racy.get(kind, ()))),
                self.folders[kind],
            )
            for kind, names in self.names.items()
        }

    @classmethod
    def unpacked(cls, data: object) -> SourceFiles:
        files = cls()
        if type(data) is not dict:
            raise Stale
        for kind, packed in data.items():
            if not (type(packed) is tuple and len(packed) == 7):
                raise Stale
            names, stats, read, digests, has, racy, folder = packed
            if not (type(names) is list and all(type(n) is str for n in names)):
                raise Stale
            if not all(type(b) is bytes for b in (stats, read, digests, has)) or set(has) - {
                0,
                CACHED,
                PLAIN,
            }:
                raise Stale
            if not (type(racy) is tuple and all(type(n) is int and 0 <= n < len(names) for n in racy)):
                raise Stale
            if not (type(folder) is tuple and len(folder) == 4 and all(type(n) is int for n in folder)):
                raise Stale
            files.names[kind] = names
            files.stats[kind] = array("Q")
            files.stats[kind].frombytes(stats)
            files.read[kind] = array("Q")
            files.read[kind].frombytes(read)
            files.digests[kind] = bytearray(digests)
            files.has[kind] = bytearray(has)
            files.racy[kind] = set(racy)
            files.folders[kind] = folder
            count = len(names)
            if (
                len(files.stats[kind]) != count * _STAT
                or len(files.read[kind]) != count
                or len(digests) != count * _DIGEST
                or len(has) != count
            ):
                raise Stale
        return files


def _racy(stat: tuple[int, ...], read_ns: int) -> bool:
    """Whether a file's stat was taken within `RACY_NS` of its last change (size, mtime, ctime, inode)."""
    return max(stat[1], stat[2]) + RACY_NS >= read_ns


def folder_stat(folder: Path | str) -> tuple[int, int, int] | None:
    """What says whether a folder's entries came or went: its mtime, ctime and inode."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


_STAT_FIELDS = operator.attrgetter("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino")  # _STAT of them


def file_stats(folder: Path, names: list[str]) -> array:
    """The stat of every file named in `folder`, packed as `SourceFiles.stats` packs them; `Stale` when one is gone.

    20,000 stats: the loop runs in C (`map`), the numbers go straight into an array.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        raise Stale from None
    try:
        stat = functools.partial(os.stat, dir_fd=fd)
        return array("Q", itertools.chain.from_iterable(map(_STAT_FIELDS, map(stat, names))))
    except (OSError, OverflowError):  # gone, or a time before 1970
        raise Stale from None
    finally:
        os.close(fd)
