"""The manifest of a built site as text: a quick rebuild finds and replaces a few records in place.

Parsing and writing out 22,000 records cost more than the rest of a one-issue rebuild
(`newsletter.archive.rebuild`); this reads the manifest exactly as
`newsletter.archive.site` writes it, and anything else raises `Stale` (the full build
then writes it anew).
"""

from __future__ import annotations

import json
from typing import Any

from newsletter.archive.site import MANIFEST_VERSION
from newsletter.archive.source_files import Stale

__all__ = ["ManifestText"]


def _json(value: object) -> bytes:
    """JSON as `site._write_manifest` writes it."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class ManifestText:
    """The manifest as `site._write_manifest` wrote it (the index has its hash): records read and replaced in place.

    Parsing and writing out 22,000 records cost more than the rest of a one-issue
    rebuild; a record is found by its path, which, followed by `:{`, cannot occur inside
    a JSON string (a quote there is always escaped), and records hold no braces.
    """

    HEAD = b'{"files":{'
    MIDDLE = b'},"generator":"newsletter","memo":'
    TAIL = b',"version":' + str(MANIFEST_VERSION).encode() + b"}"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.files_end = data.find(self.MIDDLE)
        if not data.startswith(self.HEAD) or self.files_end < 0 or not data.endswith(self.TAIL):
            raise Stale
        self.memo_start = self.files_end + len(self.MIDDLE)
        self.memo_end = len(data) - len(self.TAIL)
        self.found: dict[str, tuple[int, int]] = {}

    def memo(self) -> dict[str, Any]:
        try:
            memo = json.loads(self.data[self.memo_start : self.memo_end])
        except ValueError:
            raise Stale from None
        if type(memo) is not dict:
            raise Stale
        return memo

    def record(self, path: str) -> dict[str, Any]:
        needle = _json(path) + b":{"
        at = self.data.find(needle, len(self.HEAD) - 1, self.files_end)
        if at < 0 or self.data[at - 1 : at] not in (b"{", b","):
            raise Stale  # a page the manifest does not list: the full build knows what to do
        start = at + len(needle) - 1
        stop = self.data.find(b"}", start) + 1
        self.found[path] = (start, stop)
        try:
            record = json.loads(self.data[start:stop])
        except ValueError:
            raise Stale from None
        if type(record) is not dict:
            raise Stale
        return record

    def patched(self, records: dict[str, dict[str, Any]], memo: dict[str, str]) -> bytes:
        """The manifest with these records (of paths read with `record`) and this memo."""
        pieces = []
        done = 0
        for start, stop, path in sorted((*self.found[path], path) for path in records):
            pieces += [self.data[done:start], _json(records[path])]
            done = stop
        pieces += [self.data[done : self.memo_start], _json(dict(sorted(memo.items()))), self.TAIL]
        return b"".join(pieces)
