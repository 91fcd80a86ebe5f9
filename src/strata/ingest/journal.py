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

import contextlib
import fcntl
import mmap
import os
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final, Literal, NamedTuple

import orjson

from strata.ingest.errors import JournalCorruptError, JournalLockedError

SEGMENT_MAGIC: Final = b"STRJ\x02\x00\x00\x00"
SEGMENT_HEADER: Final = 16  # magic (8) + segment number (8)
# [u32 seal][u32 payload length][u8 kind][u32 stream id][i64 ingested_us][payload]
# ``seal`` is the crc32 of everything after it (never 0), stored last: a reader that sees a
# seal matching the bytes it covers has a whole frame, whatever order the stores became
# visible in; a zero or mismatching seal is a frame still being written (or torn).
_SEAL: Final = struct.Struct("<I")
_HEADER: Final = struct.Struct("<IBIq")
_FRAME: Final = struct.Struct("<IIBIq")  # seal and header, read in one call
FRAME_OVERHEAD: Final = _SEAL.size + _HEADER.size
_REASON: Final = struct.Struct("<H")  # quarantine payloads start with their reason's length

KIND_PARTITION: Final = 1  # payload: JSON [table, tenant, quarantined]; declares a stream id
KIND_RECORD: Final = 2  # payload: the record's JSON line
KIND_QUARANTINE: Final = 3  # payload: reason length, reason, the record's JSON line
KIND_SHAPE: Final = 4  # payload: JSON [table, {field: kind}]
KIND_END: Final = 5  # payload: the next segment's number; nothing follows in this segment
KIND_BATCH: Final = 6  # payload: u32 record count, then that many JSON lines (one ingest_many)
_COUNT: Final = struct.Struct("<I")
_END_RESERVE: Final = 64  # kept free at the end of every segment for its END frame

_PREFAULT_STEP: Final = 1 << 20

StreamKey = tuple[str, str, bool]
"""(table, tenant, quarantined): one stream of records inside a segment."""


def position(segment_no: int, offset: int) -> int:
    return segment_no << 32 | offset


def segment_of(pos: int) -> int:
    return pos >> 32


class JournalFrame(NamedTuple):
    """Records read back from one frame (a tuple: the writer reads millions of these)."""

    pos: int
    stream: StreamKey
    ingested_us: int
    payload: bytes  # JSON lines, newline included
    records: int  # records in the payload: 1, or more for an ingest_many batch
    reason: str | None  # quarantine reason, None for regular records


class JournalDir:
    """The directory, its lock and its metadata; shared by the appender and the writer."""

    def __init__(
        self, path: str | os.PathLike[str], *, role: Literal["producer", "writer"] = "producer"
    ) -> None:
        """Open a journal directory as its producer (the client) or as its writer process.

        Each role holds its own lock: one producer per slot, and one writer process per
        slot, so a writer left over from a dead producer finishes before the next starts.
        """
        self.path = Path(path).absolute()
        self.segments = self.path / "segments"
        self.segments.mkdir(parents=True, exist_ok=True)
        self.role = role
        self._lock_fd = os.open(self.path / f"{role}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        if role == "producer":
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._lock_fd)
                raise JournalLockedError(str(self.path)) from None
        else:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # waits for a previous writer to exit
        meta = self._read_json("journal.json") or {}
        self.journal_id = str(meta.get("journal_id") or uuid.uuid4())
        if role == "writer":
            self._next_segment = -1
            return
        for leftover in self.segments.glob(".*.tmp"):
            leftover.unlink()  # a spare segment that was being prepared when a process died
        existing = self.segment_numbers()
        self._next_segment = max(
            [int(str(meta.get("next_segment", 0))), *(n + 1 for n in existing)]
        )
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
        self.write_json(
            "journal.json", {"journal_id": self.journal_id, "next_segment": self._next_segment}
        )

    def take_segment_number(self) -> int:
        number = self._next_segment
        self._next_segment += 1
        self._write_meta()
        return number

    @property
    def shapes(self) -> SharedShapes:
        """Table shapes, shared by every slot (process) of this service."""
        return SharedShapes(self.path.parent)

    def segment_path(self, number: int) -> Path:
        return self.segments / f"{number:016d}.seg"

    def spare_path(self, number: int) -> Path:
        return self.segments / f".{number:016d}.seg.tmp"

    def segment_numbers(self) -> list[int]:
        return sorted(int(p.stem) for p in self.segments.glob("*.seg") if p.stem.isdigit())

    def delete_segment(self, number: int) -> None:
        self.segment_path(number).unlink(missing_ok=True)

    def close(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1


class SharedShapes:
    """``shapes.json`` beside a service's journal slots, changed under a file lock."""

    def __init__(self, service_root: Path) -> None:
        self.path = service_root / "shapes.json"
        self._lock_path = service_root / "shapes.lock"

    def read(self) -> dict[str, dict[str, str]]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except orjson.JSONDecodeError as exc:
            raise JournalCorruptError(str(self.path), str(exc)) from exc
        return {str(t): dict(v) for t, v in data.items() if isinstance(v, dict)}

    def write(self, shapes: Mapping[str, Mapping[str, str]]) -> None:
        tmp = self.path.with_name(f".shapes.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(shapes))
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def create_segment(path: Path, number: int, size: int, *, prefault: bool) -> tuple[int, mmap.mmap]:
    """Create a segment file at ``path`` and map it.

    With ``prefault`` (a helper thread preparing the next segment) the blocks are
    allocated and the pages put in the page cache with ``pwrite`` of zeros, which releases
    the GIL. Appends into such a segment are a plain memory copy; into a sparse one, every
    new page costs a fault and a block allocation (tens of microseconds, at times more).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
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
    """The producer's end of the journal: appends frames into a mapped segment.

    Not thread-safe by itself; the client holds its lock around every call. A helper
    thread prepares the next segment ahead of time (``prepare_spare``) so that rolling over
    is a swap, not file creation on a caller's thread. Each full segment ends with an END
    frame naming the next segment, which is how the writer process follows the producer.
    """

    def __init__(self, journal: JournalDir, segment_bytes: int) -> None:
        self._journal = journal
        self._size = segment_bytes
        self._limit = segment_bytes - _END_RESERVE
        self._fd = -1
        self._mm: mmap.mmap | None = None
        self._spare: tuple[int, int, mmap.mmap] | None = None
        self.segment_no = -1
        self.offset = 0
        self._base = 0
        self.stream_ids: dict[StreamKey, int] = {}
        self.shapes: dict[str, bytes] = {}  # table -> encoded shape, re-declared per segment
        self._update_max_payload()
        # The first segment is prefaulted here, in the constructor, where a few milliseconds
        # cost nothing; later ones by the client's helper thread.
        number = self._journal.take_segment_number()
        self._open(
            number,
            create_segment(journal.segment_path(number), number, segment_bytes, prefault=True),
        )
        self.first_segment = self.segment_no

    @property
    def head(self) -> int:
        """The position the next frame will get."""
        return self._base | self.offset

    @property
    def fd(self) -> int:
        return self._fd

    def needs_spare(self) -> bool:
        return self._spare is None

    def take_segment_number(self) -> int:
        return self._journal.take_segment_number()

    def install_spare(self, number: int, fd: int, mm: mmap.mmap, tmp_path: Path) -> bool:
        """Adopt a prepared segment if it is still ahead of the active one."""
        if number <= self.segment_no or self._mm is None:
            return False
        os.replace(tmp_path, self._journal.segment_path(number))
        self._spare = (number, fd, mm)
        return True

    def _open(self, number: int, prepared: tuple[int, mmap.mmap] | None) -> None:
        if prepared is None:
            prepared = create_segment(
                self._journal.segment_path(number), number, self._size, prefault=False
            )
        self.segment_no = number
        self._fd, self._mm = prepared
        self._base = position(number, 0)
        self.offset = SEGMENT_HEADER
        self.stream_ids = {}
        for table, shape in self.shapes.items():
            self._frame(KIND_SHAPE, 0, 0, orjson.dumps([table, orjson.Fragment(shape)]))

    def _roll(self) -> None:
        if self._spare is not None:
            number, fd, mm = self._spare
            self._spare = None
            prepared: tuple[int, mmap.mmap] | None = (fd, mm)
        else:
            number, prepared = self._journal.take_segment_number(), None
        self._frame(KIND_END, 0, 0, str(number).encode(), limit=self._size)
        self._close_segment()
        self._open(number, prepared)

    def _close_segment(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def max_payload(self) -> int:
        """The largest record payload that fits in a fresh segment beside its declarations."""
        return self._max_payload

    def _update_max_payload(self) -> None:
        shapes = sum(len(s) + 64 for s in self.shapes.values())
        self._max_payload = self._limit - SEGMENT_HEADER - 3 * FRAME_OVERHEAD - 1024 - shapes

    def _declare(self, stream: StreamKey) -> int:
        sid = len(self.stream_ids)
        if self._frame(KIND_PARTITION, sid, 0, orjson.dumps([stream[0], stream[1], stream[2]])) < 0:
            return -1
        self.stream_ids[stream] = sid
        return sid

    def _frame(self, kind: int, sid: int, ingested_us: int, payload: bytes, limit: int = 0) -> int:
        off = self.offset
        start = off + FRAME_OVERHEAD
        end = start + len(payload)
        if end > (limit or self._limit):
            return -1
        mm = self._mm
        assert mm is not None  # invariant: a segment is open between rolls
        header = _HEADER.pack(len(payload), kind, sid, ingested_us)
        mm[off + _SEAL.size : start] = header
        mm[start:end] = payload
        _SEAL.pack_into(
            mm, off, zlib.crc32(payload, zlib.crc32(header)) or 1
        )  # last: publishes the frame
        self.offset = end
        return self._base | off

    def append(self, kind: int, stream: StreamKey, ingested_us: int, payload: bytes) -> int:
        """Append one record frame and return its position."""
        sid = self.stream_ids.get(stream)
        if sid is None:
            sid = self._declare(stream)
        pos = self._frame(kind, sid, ingested_us, payload) if sid >= 0 else -1
        if pos < 0:
            self._roll()
            pos = self._frame(kind, self._declare(stream), ingested_us, payload)
        return pos

    def declare_shape(self, table: str, shape: Mapping[str, str]) -> None:
        """Record a table's (grown) shape so the writer can type the records that follow."""
        encoded = orjson.dumps(dict(shape))
        self.shapes[table] = encoded
        self._update_max_payload()
        if self._frame(KIND_SHAPE, 0, 0, orjson.dumps([table, orjson.Fragment(encoded)])) < 0:
            self._roll()  # the new segment starts by declaring every shape, this one included

    def close(self) -> None:
        self._close_segment()
        if self._spare is not None:
            number, fd, mm = self._spare
            mm.close()
            os.close(fd)
            self._journal.delete_segment(number)  # never used: no frames to keep
            self._spare = None


_STREAM_KINDS: Final = frozenset({KIND_RECORD, KIND_QUARANTINE, KIND_BATCH})


def batch_payload(lines: list[bytes]) -> bytes:
    return _COUNT.pack(len(lines)) + b"".join(lines)


def quarantine_payload(reason: str, record_json: bytes) -> bytes:
    encoded = reason.encode()[:65535]
    return _REASON.pack(len(encoded)) + encoded + record_json


class SegmentScanner:
    """Reads record frames of one segment in order, resuming where the last read stopped.

    The writer process follows the producer with it: a zero header is "nothing yet" in a
    live segment and "the end" in a segment a dead producer left; an END frame names the
    segment that follows. Shape declarations are merged into ``shapes`` as they are met.
    """

    def __init__(self, path: Path, shapes: dict[str, dict[str, str]], *, live: bool) -> None:
        self.path = path
        self.live = live
        self.shapes = shapes
        # Kept open: the writer syncs the range it has read through it before committing.
        self.fd = os.open(path, os.O_RDONLY)
        size = os.fstat(self.fd).st_size
        if size < SEGMENT_HEADER:
            os.close(self.fd)
            raise JournalCorruptError(str(path), "shorter than a segment header")
        self._mm = mmap.mmap(self.fd, size, access=mmap.ACCESS_READ)
        if self._mm[:8] != SEGMENT_MAGIC:
            self._mm.close()
            os.close(self.fd)
            raise JournalCorruptError(str(path), "bad magic")
        self._view = memoryview(self._mm)  # zero-copy slices for checksums
        self.segment_no = int.from_bytes(self._mm[8:16], "little")
        self.offset = SEGMENT_HEADER
        self.exhausted = False  # no frame will ever follow
        self.next_segment: int | None = None  # from the END frame, when there is one
        self._streams: dict[int, StreamKey] = {}

    @property
    def pos(self) -> int:
        return position(self.segment_no, self.offset)

    def read(self, max_frames: int) -> Iterator[JournalFrame]:
        """Yield up to ``max_frames`` record frames from the current offset.

        The writer's per-record cost lives here, hence the local names and the direct
        tuple construction of frames.
        """
        mm, view, streams = self._mm, self._view, self._streams
        size = len(mm)
        unpack, crc32, new_frame = _FRAME.unpack_from, zlib.crc32, tuple.__new__
        base = position(self.segment_no, 0)
        offset = self.offset
        yielded = 0
        try:
            while yielded < max_frames:
                if offset + FRAME_OVERHEAD > size:
                    self.exhausted = True
                    return
                seal, length, kind, sid, us = unpack(mm, offset)
                start = offset + FRAME_OVERHEAD
                end = start + length
                if seal == 0 or end > size:
                    self.exhausted = not self.live  # a live producer may still write here
                    return
                # The seal covers header and payload, which are contiguous: one checksum.
                if (crc32(view[offset + _SEAL.size : end]) or 1) != seal or (
                    kind in _STREAM_KINDS and sid not in streams
                ):
                    # Live: the producer is mid-append. Otherwise: torn by a crash, and the
                    # caller of that append never saw it return.
                    self.exhausted = not self.live
                    return
                pos = base | offset
                offset = end
                if kind == KIND_RECORD:
                    yielded += 1
                    yield new_frame(JournalFrame, (pos, streams[sid], us, mm[start:end], 1, None))
                elif kind == KIND_BATCH:
                    (count,) = _COUNT.unpack_from(mm, start)
                    yielded += count
                    payload = mm[start + _COUNT.size : end]
                    yield new_frame(JournalFrame, (pos, streams[sid], us, payload, count, None))
                elif kind == KIND_QUARANTINE:
                    payload = mm[start:end]
                    (rlen,) = _REASON.unpack_from(payload)
                    reason = payload[_REASON.size : _REASON.size + rlen].decode()
                    record = payload[_REASON.size + rlen :]
                    yielded += 1
                    yield new_frame(JournalFrame, (pos, streams[sid], us, record, 1, reason))
                elif kind == KIND_PARTITION:
                    table, tenant, quarantined = orjson.loads(mm[start:end])
                    streams[sid] = (table, tenant, bool(quarantined))
                elif kind == KIND_SHAPE:
                    table, shape = orjson.loads(mm[start:end])
                    merge_shape(self.shapes.setdefault(table, {}), shape)
                elif kind == KIND_END:
                    self.next_segment = int(mm[start:end])
                    self.exhausted = True
                    return
                else:
                    raise JournalCorruptError(
                        str(self.path), f"unknown frame kind {kind} at offset {pos & 0xFFFFFFFF}"
                    )
        finally:
            self.offset = offset

    def close(self) -> None:
        self._view.release()
        self._mm.close()
        os.close(self.fd)


def merge_shape(held: dict[str, str], declared: Mapping[str, str]) -> None:
    """Shapes only grow: a declaration adds fields and widens int to float, never narrows."""
    for name, kind in declared.items():
        current = held.get(name)
        if current is None or (current == "int" and kind == "float"):
            held[name] = kind
