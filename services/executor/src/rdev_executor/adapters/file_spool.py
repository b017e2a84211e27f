"""The output spool on disk: a directory of the executor's own under the data dir.

Each run spilling output appends its batches to segment files, read back in order
and deleted once stored, so the disk holds about what is still waiting. The bytes
waiting across all of the executor's runs are bounded (`RDEV_OUTPUT_SPOOL_BYTES`).
The directory is locked (flock) while its executor lives; at start an executor
removes the directories no live executor holds: what a dead executor spooled
belongs to runs already closed `lost`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import struct
import tempfile
from collections import deque
from pathlib import Path
from typing import BinaryIO

import structlog

from rdev_executor.domain.output import Batch

log = structlog.get_logger()

SEGMENT_BYTES = 8 * 1024 * 1024
LOCK_FILE = "lock"
_LENGTHS = struct.Struct(">II")  # header bytes, text bytes


def encode(batch: Batch) -> bytes:
    text = batch.text.encode()
    header = json.dumps(
        {
            "stream": batch.stream,
            "first_line": batch.first_line,
            "count": batch.count,
            "partial": batch.partial,
            "cr": batch.cr,
        }
    ).encode()
    return _LENGTHS.pack(len(header), len(text)) + header + text


def _read_record(f: BinaryIO) -> tuple[Batch, int]:
    lengths = f.read(_LENGTHS.size)
    header_len, text_len = _LENGTHS.unpack(lengths)
    header = json.loads(f.read(header_len))
    text = f.read(text_len).decode()
    batch = Batch(
        stream=header["stream"],
        first_line=header["first_line"],
        parts=[text],
        count=header["count"],
        partial=header["partial"],
        cr=header["cr"],
        size=len(text) + 1,
    )
    return batch, _LENGTHS.size + header_len + text_len


class FileSpool:
    def __init__(self, root: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.used = 0
        self._dir: Path | None = None
        self._lock: int | None = None

    def sweep(self) -> None:
        """Remove the spool directories of executors that are gone."""
        if not self.root.is_dir():
            return
        for directory in self.root.iterdir():
            if directory != self._dir and directory.is_dir() and not _held(directory):
                shutil.rmtree(directory, ignore_errors=True)
                log.info("stale output spool removed", path=str(directory))

    def open(self, command_id: str) -> FileRunSpool:
        return FileRunSpool(self, self._directory() / command_id)

    def reserve(self, size: int) -> bool:
        if self.used + size > self.max_bytes:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used -= size

    def _directory(self) -> Path:
        if self._dir is None:
            self.root.mkdir(parents=True, exist_ok=True)
            directory = Path(tempfile.mkdtemp(prefix="executor-", dir=self.root))
            lock = os.open(directory / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._dir, self._lock = directory, lock
        return self._dir

    def close(self) -> None:
        """Remove the executor's directory (at a clean stop)."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
        self._dir = self._lock = None


def _held(directory: Path) -> bool:
    """True if a live executor holds `directory`'s lock."""
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDWR)
    except OSError:
        return False  # no lock file: not (or no longer) an executor's
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class FileRunSpool:
    """Segment files `<prefix>.<n>`: appended at the newest, read from the oldest."""

    def __init__(self, spool: FileSpool, prefix: Path) -> None:
        self.spool = spool
        self.prefix = prefix
        self.segments: deque[Path] = deque()
        self.waiting = 0
        self._writer: BinaryIO | None = None
        self._written = 0
        self._reader: BinaryIO | None = None
        self._head: tuple[Batch, int] | None = None
        self._next_segment = 0

    def append(self, batch: Batch) -> bool:
        record = encode(batch)
        if not self.spool.reserve(len(record)):
            return False
        try:
            if self._writer is None or self._written >= self.spool.segment_bytes:
                self._new_segment()
            assert self._writer is not None
            self._writer.write(record)
            self._writer.flush()  # so the reader's handle sees it
        except BaseException:
            self.spool.release(len(record))
            raise
        self._written += len(record)
        self.waiting += len(record)
        return True

    def _new_segment(self) -> None:
        if self._writer is not None:
            self._writer.close()
        path = self.prefix.with_name(f"{self.prefix.name}.{self._next_segment}")
        self._next_segment += 1
        self._writer = path.open("wb")
        self._written = 0
        self.segments.append(path)

    def peek(self) -> Batch:
        if self._head is None:
            # A segment read to its end, and no longer written to, is done with.
            if (
                self._reader is not None
                and len(self.segments) > 1
                and self._reader.tell() >= self.segments[0].stat().st_size
            ):
                self._reader.close()
                self._reader = None
                self.segments.popleft().unlink(missing_ok=True)
            if self._reader is None:
                self._reader = self.segments[0].open("rb")
            self._head = _read_record(self._reader)
        return self._head[0]

    def pop(self) -> None:
        self.peek()
        assert self._head is not None
        size = self._head[1]
        self._head = None
        self.waiting -= size
        self.spool.release(size)

    def close(self) -> None:
        for handle in (self._writer, self._reader):
            if handle is not None:
                handle.close()
        self._writer = self._reader = None
        for path in self.segments:
            with contextlib.suppress(OSError):
                path.unlink()
        self.segments.clear()
        self.spool.release(self.waiting)
        self.waiting = 0
