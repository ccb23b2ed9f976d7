"""The embedded default transport: one .eml file per message in an outbox folder.

Each file is written to a temporary name in the same folder, flushed to disk, then
renamed into place (as Mailman writes its queue files), so a reader of the outbox, or a
crash, never sees a half-written message.

Unlike a remote provider, the outbox can be asked what happened: when writing fails, the
transport looks for the message's file. If it is there (a rename on a network file
system can report failure after it happened), the message is sent; if not, it certainly
was not. So this transport never answers *uncertain*.
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path

from newsletter.delivery.transports.base import SendResult, StopSending, Transport

TEMP_PREFIX = ".tmp-"  # temporary files start with a dot so `*.eml` globs never see them
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def safe_file_part(recipient: str, limit: int = 64) -> str:
    """The recipient address reduced to characters that are safe in file names everywhere."""
    return _UNSAFE.sub("_", recipient).strip("._")[:limit] or "recipient"


class FileTransport(Transport):
    """Writes each message to `<outbox>/<run>-<seq>-<recipient>.eml`."""

    name = "file"

    def __init__(self, outbox: Path | str, *, fsync: bool = True) -> None:
        self.outbox = Path(outbox)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        # The run prefix keeps names from separate sends apart and sorts them by time.
        self._run = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]

    def open(self) -> None:
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StopSending(f"{self.outbox}: cannot create the outbox folder: {exc.strerror}") from None

    def check(self) -> None:
        self.open()
        if not os.access(self.outbox, os.W_OK):
            raise StopSending(f"{self.outbox}: the outbox folder is not writable")

    def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        with self._lock:
            seq = next(self._counter)
        name = f"{self._run}-{seq:06d}-{safe_file_part(recipient)}.eml"
        try:
            fd, temp = self._temp_file()
        except OSError as exc:
            raise StopSending(f"{self.outbox}: cannot write to the outbox: {exc.strerror}") from None
        final = self.outbox / name
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp, final)
        except Exception as exc:
            Path(temp).unlink(missing_ok=True)
            if final.exists():
                return SendResult.sent(name)  # the rename happened; only its answer failed
            if isinstance(exc, OSError):
                # A full or read-only disk fails every later message too.
                raise StopSending(f"{final}: cannot write the message: {exc.strerror}") from None
            raise
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return SendResult.sent(name)

    def _temp_file(self) -> tuple[int, str]:
        try:
            return tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=self.outbox)
        except FileNotFoundError:
            # send() without open(), or the folder was removed under us: make it again.
            self.outbox.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=self.outbox)
