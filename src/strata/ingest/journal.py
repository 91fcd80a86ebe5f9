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

SEGMENT_MAGIC: Final = b"STRJ\x02\x00\x00\x00"
SEGMENT_HEADER: Final = 16  # magic (8) + segment number (8)
# [u32 payload length][u32 crc32(payload)][u8 kind][u32 stream id][i64 ingested_us][payload]
_FRAME: Final = struct.Struct("<IIBIq")
FRAME_OVERHEAD: Final = _FRAME.size
_REASON: Final = struct.Struct("<H")  # quarantine payloads start with their reason's length

KIND_PARTITION: Final = 1  # payload: JSON [table, tenant, quarantined]; declares a stream id
KIND_RECORD: Final = 2  # payload: the record's JSON line
KIND_QUARANTINE: Final = 3  # payload: reason length, reason, the record's JSON line

_PREFAULT_STEP: Final = 1 << 20

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


def create_segment(journal: JournalDir, number: int, size: int, *, prefault: bool) -> tuple[int, mmap.mmap]:
    """Create a segment file and map it.

    With ``prefault`` (the writer thread preparing the next segment) the blocks are
    allocated and the pages put in the page cache with ``pwrite`` of zeros, which releases
    the GIL. Appends into such a segment are a plain memory copy; into a sparse one, every
    new page costs a fault and a block allocation (tens of microseconds, at times more).
    """
    fd = os.open(journal.segment_path(number), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    if prefault:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError:
            pass  # file systems without fallocate: the zero writes below allocate instead
        zeros = bytes(_PREFAULT_STEP)
        for start in range(0, size, _PREFAULT_STEP):
            os.pwrite(fd, zeros[: min(_PREFAULT_STEP, size - start)], start)
    else:
        os.ftruncate(fd, size)
    mm = mmap.mmap(fd, size)
    mm[:SEGMENT_HEADER] = SEGMENT_MAGIC + number.to_bytes(8, "little")
    return fd, mm


class SegmentAppender:
    """The caller-side end of the journal: appends frames into a mapped segment.

    Not thread-safe by itself; the client holds its lock around every call. The writer
    thread prepares the next segment ahead of time (``prepare_spare``) so that rolling
    over is a swap, not file creation on a caller's thread.
    """

    def __init__(self, journal: JournalDir, segment_bytes: int) -> None:
        self._journal = journal
        self._size = segment_bytes
        self._fd = -1
        self._mm: mmap.mmap | None = None
        self._spare: tuple[int, int, mmap.mmap] | None = None
        self.segment_no = -1
        self.offset = 0
        self._base = 0
        self.stream_ids: dict[StreamKey, int] = {}
        self._roll()

    @property
    def head(self) -> int:
        """The position the next frame will get."""
        return self._base | self.offset

    @property
    def fd(self) -> int:
        return self._fd

    def needs_spare(self) -> bool:
        return self._spare is None

    def take_spare_number(self) -> int:
        return self._journal.take_segment_number()

    def install_spare(self, number: int, fd: int, mm: mmap.mmap) -> None:
        self._spare = (number, fd, mm)

    def _roll(self) -> None:
        self._close_segment()
        if self._spare is not None:
            self.segment_no, self._fd, self._mm = self._spare
            self._spare = None
        else:
            self.segment_no = self._journal.take_segment_number()
            self._fd, self._mm = create_segment(self._journal, self.segment_no, self._size, prefault=False)
        self._base = position(self.segment_no, 0)
        self.offset = SEGMENT_HEADER
        self.stream_ids = {}

    def _close_segment(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def fits(self, size: int) -> bool:
        """Whether a payload of ``size`` bytes fits in a segment at all."""
        return SEGMENT_HEADER + 2 * FRAME_OVERHEAD + size + 512 <= self._size

    def _declare(self, stream: StreamKey) -> int:
        sid = len(self.stream_ids)
        body = orjson.dumps([stream[0], stream[1], stream[2]])
        self._frame(KIND_PARTITION, sid, 0, body)
        self.stream_ids[stream] = sid
        return sid

    def _frame(self, kind: int, sid: int, ingested_us: int, payload: bytes) -> int:
        off = self.offset
        start = off + FRAME_OVERHEAD
        end = start + len(payload)
        if end > self._size:
            return -1
        mm = self._mm
        assert mm is not None  # noqa: S101 - invariant: a segment is open between rolls
        mm[start:end] = payload
        # The header goes in last: a frame without one is a frame that never returned.
        _FRAME.pack_into(mm, off, len(payload), zlib.crc32(payload), kind, sid, ingested_us)
        self.offset = end
        return self._base | off

    def append(self, kind: int, stream: StreamKey, ingested_us: int, payload: bytes) -> int:
        """Append one record frame and return its position."""
        sid = self.stream_ids.get(stream)
        if sid is None:
            sid = self._declare(stream) if self.offset + 512 < self._size else -1
        pos = self._frame(kind, sid, ingested_us, payload) if sid >= 0 else -1
        if pos < 0:
            self._roll()
            pos = self._frame(kind, self._declare(stream), ingested_us, payload)
        return pos

    def close(self) -> None:
        self._close_segment()
        if self._spare is not None:
            number, fd, mm = self._spare
            mm.close()
            os.close(fd)
            self._journal.delete_segment(number)  # never used: no frames to keep
            self._spare = None


def quarantine_payload(reason: str, record_json: bytes) -> bytes:
    encoded = reason.encode()[:65535]
    return _REASON.pack(len(encoded)) + encoded + record_json


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
        size_limit = len(mm)
        end_limit = size_limit if limit_offset is None else min(limit_offset, size_limit)
        yielded = 0
        while yielded < max_frames and self.offset + FRAME_OVERHEAD <= end_limit:
            length, crc, kind, sid, us = _FRAME.unpack_from(mm, self.offset)
            start = self.offset + FRAME_OVERHEAD
            end = start + length
            if kind == 0 or end > size_limit:
                self.exhausted = True  # the unwritten tail of the segment
                return
            if end > end_limit:
                return
            payload = mm[start:end]
            if zlib.crc32(payload) != crc or (kind != KIND_PARTITION and sid not in self._streams):
                self.exhausted = True  # a torn frame from a crash: its caller never saw it return
                return
            pos = position(self.segment_no, self.offset)
            self.offset = end
            if kind == KIND_PARTITION:
                table, tenant, quarantined = orjson.loads(payload)
                self._streams[sid] = (table, tenant, bool(quarantined))
            elif kind == KIND_RECORD:
                yielded += 1
                yield JournalFrame(pos, self._streams[sid], us, payload, None)
            elif kind == KIND_QUARANTINE:
                (rlen,) = _REASON.unpack_from(payload)
                reason = payload[_REASON.size : _REASON.size + rlen].decode()
                yielded += 1
                yield JournalFrame(pos, self._streams[sid], us, payload[_REASON.size + rlen :], reason)
            else:
                raise JournalCorruptError(str(self.path), f"unknown frame kind {kind} at offset {pos & 0xFFFFFFFF}")
        if self.offset + FRAME_OVERHEAD > size_limit:
            self.exhausted = True

    def close(self) -> None:
        self._mm.close()
