"""The on-disk journal: where an accepted record lives until its batch is in the lake.

Layout of a journal directory (owned by one client at a time, guarded by ``lock``):

    journal.json            {"journal_id": ..., "next_segment": N}
    shapes.json             the learned shape of every table (see ``shape``)
    state.log               writer intents, commits and checkpoints (see ``statelog``)
    segments/{N:016d}.seg   append-only frames, memory-mapped, preallocated

A *position* is ``segment_no << 32 | offset``: positions only grow, across restarts too,
because segment numbers are never reused (``next_segment`` is persisted).

Frames are ``[u32 body length][u32 crc32(body)][body]``. The body is written before the
header, so a process killed mid-append leaves a zero or mismatching header and the frame
is ignored on replay (the caller never got a return for it). Writing into a shared mapping
is a memory copy: no syscall and no GIL release on the hot path, and the bytes survive the
process being SIGKILLed because they are already in the OS page cache.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from strata.ingest.errors import JournalCorruptError, JournalLockedError

SEGMENT_MAGIC: Final = b"STRJ\x01\x00\x00\x00"
SEGMENT_HEADER: Final = 16  # magic (8) + segment number (8)
_FRAME: Final = struct.Struct("<II")
FRAME_OVERHEAD: Final = _FRAME.size

KIND_PARTITION: Final = 1
KIND_RECORD: Final = 2
KIND_QUARANTINE: Final = 3

_PARTITION: Final = struct.Struct("<BI")  # kind, pid; then JSON [table, tenant]
_RECORD: Final = struct.Struct("<BIq")  # kind, pid, ingested_us; then the JSON line
_QUARANTINE: Final = struct.Struct("<BIqH")  # kind, pid, ingested_us, reason length; reason; JSON

StreamKey = tuple[str, str, bool]
"""(table, tenant, quarantined): one stream of records inside a segment."""


def position(segment_no: int, offset: int) -> int:
    return segment_no << 32 | offset


def segment_of(pos: int) -> int:
    return pos >> 32


@dataclass(frozen=True, slots=True)
class JournalFrame:
    """A record frame read back from a segment."""

    pos: int
    stream: StreamKey
    ingested_us: int
    payload: bytes  # the JSON line, newline included
    reason: str | None  # quarantine reason, None for regular records


class JournalDir:
    """The directory, its lock and its metadata; shared by the appender and the writer."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.segments = self.path / "segments"
        self.segments.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JournalLockedError(str(self.path)) from None
        meta = self._read_json("journal.json") or {}
        self.journal_id = str(meta.get("journal_id") or uuid.uuid4())
        existing = self.segment_numbers()
        self._next_segment = max([int(meta.get("next_segment", 0)), *(n + 1 for n in existing)])
        self._write_meta()

    @classmethod
    def claim(cls, root: str | os.PathLike[str], max_slots: int = 256) -> JournalDir:
        """Take the first free ``slot-N`` under ``root``.

        Each live client owns one slot; a process that starts after another died takes the
        dead one's slot (its lock is gone) and so replays what it left. Several worker
        processes of one service therefore share a root without sharing a journal.
        """
        for n in range(max_slots):
            try:
                return cls(Path(root) / f"slot-{n}")
            except JournalLockedError:
                continue
        raise JournalLockedError(f"{root} (all {max_slots} slots)")

    def _read_json(self, name: str) -> dict[str, object] | None:
        try:
            data = orjson.loads((self.path / name).read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise JournalCorruptError(str(self.path / name), str(exc)) from exc
        if not isinstance(data, dict):
            raise JournalCorruptError(str(self.path / name), "expected a JSON object")
        return data

    def write_json(self, name: str, data: object) -> None:
        """Replace a small metadata file atomically (temp file + rename)."""
        tmp = self.path / f".{name}.tmp"
        tmp.write_bytes(orjson.dumps(data))
        os.replace(tmp, self.path / name)

    def _write_meta(self) -> None:
        self.write_json("journal.json", {"journal_id": self.journal_id, "next_segment": self._next_segment})

    def take_segment_number(self) -> int:
        number = self._next_segment
        self._next_segment += 1
        self._write_meta()
        return number

    def read_shapes(self) -> dict[str, dict[str, str]]:
        data = self._read_json("shapes.json") or {}
        return {str(t): dict(v) for t, v in data.items() if isinstance(v, dict)}

    def segment_path(self, number: int) -> Path:
        return self.segments / f"{number:016d}.seg"

    def segment_numbers(self) -> list[int]:
        return sorted(int(p.stem) for p in self.segments.glob("*.seg") if p.stem.isdigit())

    def delete_segment(self, number: int) -> None:
        self.segment_path(number).unlink(missing_ok=True)

    def close(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1


class SegmentAppender:
    """The caller-side end of the journal: appends frames into a mapped segment.

    Not thread-safe by itself; the client holds its lock around every call.
    """

    def __init__(self, journal: JournalDir, segment_bytes: int) -> None:
        self._journal = journal
        self._segment_bytes = segment_bytes
        self._fd = -1
        self._mm: mmap.mmap | None = None
        self.segment_no = -1
        self.offset = 0
        self.stream_ids: dict[StreamKey, int] = {}
        self._roll()

    @property
    def head(self) -> int:
        """The position the next frame will get."""
        return position(self.segment_no, self.offset)

    @property
    def fd(self) -> int:
        return self._fd

    def _roll(self) -> None:
        self._close_segment()
        self.segment_no = self._journal.take_segment_number()
        path = self._journal.segment_path(self.segment_no)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.ftruncate(self._fd, self._segment_bytes)
        self._mm = mmap.mmap(self._fd, self._segment_bytes)
        self._mm[:SEGMENT_HEADER] = SEGMENT_MAGIC + self.segment_no.to_bytes(8, "little")
        self.offset = SEGMENT_HEADER
        self.stream_ids = {}

    def _close_segment(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _append(self, prefix: bytes, payload: bytes) -> int:
        size = len(prefix) + len(payload)
        end = self.offset + FRAME_OVERHEAD + size
        if end > self._segment_bytes:
            self._roll()
            return -1  # the caller re-declares its stream in the new segment and retries
        mm = self._mm
        assert mm is not None  # noqa: S101 - invariant: a segment is open between rolls
        start = self.offset + FRAME_OVERHEAD
        mm[start : start + len(prefix)] = prefix
        mm[start + len(prefix) : end] = payload
        _FRAME.pack_into(mm, self.offset, size, zlib.crc32(payload, zlib.crc32(prefix)))
        pos = position(self.segment_no, self.offset)
        self.offset = end
        return pos

    def fits(self, size: int) -> bool:
        """Whether a body of ``size`` bytes could ever fit in one segment."""
        return SEGMENT_HEADER + FRAME_OVERHEAD + _QUARANTINE.size + 2 * size <= self._segment_bytes

    def stream_id(self, stream: StreamKey) -> int:
        sid = self.stream_ids.get(stream)
        if sid is None:
            sid = len(self.stream_ids)
            body = orjson.dumps([stream[0], stream[1], stream[2]])
            if self._append(_PARTITION.pack(KIND_PARTITION, sid), body) < 0:
                return self.stream_id(stream)
            self.stream_ids[stream] = sid
        return sid

    def append_record(self, stream: StreamKey, ingested_us: int, payload: bytes) -> int:
        """Append one record frame and return its position."""
        while True:
            sid = self.stream_id(stream)
            pos = self._append(_RECORD.pack(KIND_RECORD, sid, ingested_us), payload)
            if pos >= 0:
                return pos

    def append_quarantined(self, stream: StreamKey, ingested_us: int, reason: str, payload: bytes) -> int:
        encoded = reason.encode()[:65535]
        while True:
            sid = self.stream_id(stream)
            prefix = _QUARANTINE.pack(KIND_QUARANTINE, sid, ingested_us, len(encoded)) + encoded
            pos = self._append(prefix, payload)
            if pos >= 0:
                return pos

    def close(self) -> None:
        self._close_segment()


class SegmentScanner:
    """Reads record frames of one segment in order, resuming where the last read stopped.

    Used for replay after a crash and for catching up after the writer fell behind; it
    holds its own read-only mapping so the appender may roll or close meanwhile.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < SEGMENT_HEADER:
                raise JournalCorruptError(str(path), "shorter than a segment header")
            self._mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        if self._mm[:8] != SEGMENT_MAGIC:
            self._mm.close()
            raise JournalCorruptError(str(path), "bad magic")
        self.segment_no = int.from_bytes(self._mm[8:16], "little")
        self.offset = SEGMENT_HEADER
        self.exhausted = False  # a zero or torn header: nothing valid follows
        self._streams: dict[int, StreamKey] = {}

    @property
    def pos(self) -> int:
        return position(self.segment_no, self.offset)

    def read(self, limit_offset: int | None = None, max_frames: int = 1 << 62) -> Iterator[JournalFrame]:
        """Yield record frames from the current offset up to ``limit_offset`` (exclusive)."""
        mm = self._mm
        end_limit = len(mm) if limit_offset is None else min(limit_offset, len(mm))
        yielded = 0
        while yielded < max_frames and self.offset + FRAME_OVERHEAD <= end_limit:
            size, crc = _FRAME.unpack_from(mm, self.offset)
            start = self.offset + FRAME_OVERHEAD
            end = start + size
            if size == 0 or end > len(mm):
                self.exhausted = True  # the unwritten tail of the segment
                return
            if end > end_limit:
                return
            body = mm[start:end]
            if zlib.crc32(body) != crc:
                self.exhausted = True  # a torn frame from a crash: the caller never saw it return
                return
            pos = position(self.segment_no, self.offset)
            self.offset = end
            kind = body[0]
            if kind == KIND_PARTITION:
                sid = _PARTITION.unpack_from(body)[1]
                table, tenant, quarantined = orjson.loads(body[_PARTITION.size :])
                self._streams[sid] = (table, tenant, bool(quarantined))
            elif kind == KIND_RECORD:
                _, sid, us = _RECORD.unpack_from(body)
                yielded += 1
                yield JournalFrame(pos, self._streams[sid], us, body[_RECORD.size :], None)
            elif kind == KIND_QUARANTINE:
                _, sid, us, rlen = _QUARANTINE.unpack_from(body)
                reason = body[_QUARANTINE.size : _QUARANTINE.size + rlen].decode()
                yielded += 1
                yield JournalFrame(pos, self._streams[sid], us, body[_QUARANTINE.size + rlen :], reason)
            else:
                raise JournalCorruptError(str(self.path), f"unknown frame kind {kind} at offset {pos & 0xFFFFFFFF}")
        if self.offset + FRAME_OVERHEAD > len(mm):
            self.exhausted = True

    def close(self) -> None:
        self._mm.close()
