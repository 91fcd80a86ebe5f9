"""The journal's on-disk format, read back in tmp dirs: frames, segments, slots, state log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from strata.ingest.errors import JournalCorruptError, JournalLockedError
from strata.ingest.journal import (
    FRAME_OVERHEAD,
    KIND_BATCH,
    KIND_QUARANTINE,
    KIND_RECORD,
    JournalDir,
    JournalFrame,
    SegmentAppender,
    SegmentScanner,
    batch_payload,
    position,
    quarantine_payload,
    segment_of,
)
from strata.ingest.statelog import BatchIntent, StateLog

SEGMENT_BYTES = 1 << 20
ACME = ("events", "acme", False)
GLOBEX = ("events", "globex", False)
ACME_QUARANTINE = ("events", "acme", True)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[JournalDir]:
    directory = JournalDir(tmp_path / "slot-0")
    yield directory
    directory.close()


def line(value: object) -> bytes:
    return orjson.dumps(value) + b"\n"


def read_all(
    path: Path, *, live: bool, shapes: dict[str, dict[str, str]] | None = None
) -> tuple[list[JournalFrame], SegmentScanner]:
    scanner = SegmentScanner(path, {} if shapes is None else shapes, live=live)
    return list(scanner.read(1_000_000)), scanner


# -- frames --------------------------------------------------------------------------------


def test_frames_are_read_back_in_order(journal: JournalDir) -> None:
    appender = SegmentAppender(journal, SEGMENT_BYTES)
    positions = [
        appender.append(KIND_RECORD, ACME, 1_000, line({"id": 1})),
        appender.append(KIND_RECORD, GLOBEX, 2_000, line({"id": 2})),
        appender.append(KIND_BATCH, ACME, 3_000, batch_payload([line({"id": 3}), line({"id": 4})])),
        appender.append(
            KIND_QUARANTINE,
            ACME_QUARANTINE,
            4_000,
            quarantine_payload("'id' is string", line({"id": "x"})),
        ),
        appender.append(KIND_RECORD, ACME, 5_000, line({"id": 5})),
    ]
    head = appender.head
    appender.close()

    frames, scanner = read_all(journal.segment_path(appender.first_segment), live=True)
    try:
        assert [f.pos for f in frames] == positions
        assert positions == sorted(positions)
        assert all(segment_of(p) == appender.first_segment for p in positions)
        assert [(f.stream, f.ingested_us, f.records, f.reason) for f in frames] == [
            (ACME, 1_000, 1, None),
            (GLOBEX, 2_000, 1, None),
            (ACME, 3_000, 2, None),
            (ACME_QUARANTINE, 4_000, 1, "'id' is string"),
            (ACME, 5_000, 1, None),
        ]
        assert frames[2].payload == line({"id": 3}) + line({"id": 4})
        assert frames[3].payload == line({"id": "x"})
        assert scanner.pos == head
        assert not scanner.exhausted  # live: the producer may still write
    finally:
        scanner.close()


def test_a_scanner_resumes_where_it_stopped(journal: JournalDir) -> None:
    appender = SegmentAppender(journal, SEGMENT_BYTES)
    for i in range(5):
        appender.append(KIND_RECORD, ACME, i, line({"id": i}))
    scanner = SegmentScanner(journal.segment_path(appender.segment_no), {}, live=True)
    try:
        assert [f.ingested_us for f in scanner.read(3)] == [0, 1, 2]
        assert [f.ingested_us for f in scanner.read(10)] == [3, 4]
        assert list(scanner.read(10)) == []
        appender.append(KIND_RECORD, ACME, 5, line({"id": 5}))  # the writer follows the producer
        assert [f.ingested_us for f in scanner.read(10)] == [5]
    finally:
        scanner.close()
        appender.close()


def test_shape_declarations_are_merged_as_they_are_met(journal: JournalDir) -> None:
    appender = SegmentAppender(journal, SEGMENT_BYTES)
    appender.declare_shape("events", {"id": "int"})
    appender.append(KIND_RECORD, ACME, 1, line({"id": 1}))
    appender.declare_shape("events", {"id": "float", "name": "string"})
    appender.declare_shape("profiles", {"since": "date"})
    appender.declare_shape("events", {"id": "int"})  # a narrower declaration never narrows
    appender.close()

    shapes: dict[str, dict[str, str]] = {"events": {"old": "bool"}}
    frames, scanner = read_all(
        journal.segment_path(appender.first_segment), live=False, shapes=shapes
    )
    scanner.close()
    assert len(frames) == 1  # declarations are not records
    assert shapes == {
        "events": {"old": "bool", "id": "float", "name": "string"},
        "profiles": {"since": "date"},
    }


# -- torn frames ---------------------------------------------------------------------------


def _three_frames(journal: JournalDir) -> tuple[Path, list[int]]:
    appender = SegmentAppender(journal, SEGMENT_BYTES)
    positions = [appender.append(KIND_RECORD, ACME, i, line({"id": i})) for i in range(3)]
    appender.close()
    return journal.segment_path(appender.first_segment), positions


def _patch(path: Path, offset: int, data: bytes) -> bytes:
    """Overwrite bytes in place (as a crash mid-append leaves them); returns what was there."""
    with open(path, "r+b") as f:
        f.seek(offset)
        before = f.read(len(data))
        f.seek(offset)
        f.write(data)
    return before


def _zero_seal(path: Path, frame_at: int) -> tuple[int, bytes]:
    return frame_at, _patch(path, frame_at, bytes(4))


def _flip_payload_byte(path: Path, frame_at: int) -> tuple[int, bytes]:
    at = frame_at + FRAME_OVERHEAD
    (byte,) = path.read_bytes()[at : at + 1]
    return at, _patch(path, at, bytes([byte ^ 0xFF]))


Tear = Callable[[Path, int], tuple[int, bytes]]
TEARS = pytest.mark.parametrize(
    "tear", [_zero_seal, _flip_payload_byte], ids=["zero-seal", "flipped-payload"]
)


@TEARS
def test_a_torn_frame_ends_an_old_segment(journal: JournalDir, tear: Tear) -> None:
    path, positions = _three_frames(journal)
    tear(path, positions[1] & 0xFFFFFFFF)

    frames, scanner = read_all(path, live=False)
    scanner.close()
    assert [f.ingested_us for f in frames] == [0]  # nothing after a torn frame was acknowledged
    assert scanner.exhausted
    assert scanner.next_segment is None


@TEARS
def test_a_torn_frame_is_not_yet_written_in_a_live_segment(journal: JournalDir, tear: Tear) -> None:
    path, positions = _three_frames(journal)
    at, original = tear(path, positions[1] & 0xFFFFFFFF)

    scanner = SegmentScanner(path, {}, live=True)
    try:
        assert [f.ingested_us for f in scanner.read(10)] == [0]
        assert not scanner.exhausted
        assert scanner.pos == positions[1]  # it waits at the frame being written
        _patch(path, at, original)  # the producer finishes the append
        assert [f.ingested_us for f in scanner.read(10)] == [1, 2]
    finally:
        scanner.close()


def test_an_unwritten_tail_is_the_end_of_an_old_segment(journal: JournalDir) -> None:
    path, _ = _three_frames(journal)
    frames, scanner = read_all(path, live=False)
    scanner.close()
    assert len(frames) == 3
    assert scanner.exhausted


def test_a_file_that_is_not_a_segment_is_corrupt(tmp_path: Path) -> None:
    short = tmp_path / "short.seg"
    short.write_bytes(b"STRJ")
    with pytest.raises(JournalCorruptError, match="shorter than a segment header"):
        SegmentScanner(short, {}, live=False)
    foreign = tmp_path / "foreign.seg"
    foreign.write_bytes(b"PAR1" + bytes(100))
    with pytest.raises(JournalCorruptError, match="bad magic"):
        SegmentScanner(foreign, {}, live=False)


# -- rolling over --------------------------------------------------------------------------


def test_a_full_segment_ends_with_a_frame_naming_the_next(journal: JournalDir) -> None:
    appender = SegmentAppender(journal, SEGMENT_BYTES)
    appender.declare_shape("events", {"id": "int", "note": "string"})
    first = appender.segment_no
    record = line({"id": 1, "note": "x" * 1000})
    appended: list[int] = []
    while appender.segment_no == first:
        appended.append(appender.append(KIND_RECORD, ACME, len(appended), record))
    appended.append(appender.append(KIND_RECORD, ACME, len(appended), record))
    second = appender.segment_no
    appender.close()
    assert second > first
    assert segment_of(appended[-1]) == second
    assert appended[-1] > appended[-3]  # positions keep growing across segments

    old, scanner = read_all(journal.segment_path(first), live=False)
    scanner.close()
    assert scanner.exhausted
    assert scanner.next_segment == second

    shapes: dict[str, dict[str, str]] = {}
    new, scanner = read_all(journal.segment_path(second), live=True, shapes=shapes)
    scanner.close()
    # The next segment declares its shapes and streams again: it can be read on its own.
    assert shapes == {"events": {"id": "int", "note": "string"}}
    assert [f.stream for f in new] == [ACME, ACME]
    assert [f.ingested_us for f in old + new] == list(range(len(appended)))
    assert [f.pos for f in old + new] == appended


def test_segment_numbers_are_never_reused(tmp_path: Path) -> None:
    directory = JournalDir(tmp_path / "slot-0")
    assert [directory.take_segment_number() for _ in range(3)] == [0, 1, 2]
    directory.close()
    directory = JournalDir(tmp_path / "slot-0")
    try:
        assert directory.take_segment_number() == 3
    finally:
        directory.close()


def test_positions_order_by_segment_then_offset() -> None:
    assert position(1, 0) > position(0, 0xFFFF_FFFF)
    assert segment_of(position(7, 12345)) == 7


# -- slots and locks -----------------------------------------------------------------------


def test_two_producers_on_one_root_get_their_own_slots(tmp_path: Path) -> None:
    first = JournalDir.claim(tmp_path)
    second = JournalDir.claim(tmp_path)
    try:
        assert (first.path.name, second.path.name) == ("slot-0", "slot-1")
        assert first.journal_id != second.journal_id
    finally:
        second.close()
    first.close()
    again = JournalDir.claim(tmp_path)
    try:
        assert again.path.name == "slot-0"  # the freed slot, so its leftovers get replayed
        assert again.journal_id == first.journal_id
    finally:
        again.close()


def test_a_producer_lock_is_released_on_close(tmp_path: Path) -> None:
    owner = JournalDir(tmp_path / "slot-0")
    with pytest.raises(JournalLockedError, match="in use by another IngestClient"):
        JournalDir(tmp_path / "slot-0")
    owner.close()
    owner.close()  # idempotent
    successor = JournalDir(tmp_path / "slot-0")
    successor.close()


def test_every_slot_taken_is_an_error(tmp_path: Path) -> None:
    held = [JournalDir.claim(tmp_path, max_slots=2) for _ in range(2)]
    try:
        with pytest.raises(JournalLockedError, match="all 2 slots"):
            JournalDir.claim(tmp_path, max_slots=2)
    finally:
        for directory in held:
            directory.close()


def test_a_spare_left_by_a_dead_process_is_removed(tmp_path: Path) -> None:
    directory = JournalDir(tmp_path / "slot-0")
    spare = directory.spare_path(5)
    spare.write_bytes(b"half prepared")
    directory.close()
    JournalDir(tmp_path / "slot-0").close()
    assert not spare.exists()


def test_metadata_files_round_trip_and_corruption_is_reported(journal: JournalDir) -> None:
    shapes = journal.shapes  # shared by every slot of the service: beside the slots
    with shapes.locked():
        shapes.write({"events": {"id": "int"}})
    assert shapes.path.parent == journal.path.parent
    assert shapes.read() == {"events": {"id": "int"}}
    shapes.path.write_bytes(b"{not json")
    with pytest.raises(JournalCorruptError, match=r"shapes\.json"):
        shapes.read()


# -- the writer's state log ----------------------------------------------------------------


KEY = ("events", "acme", 19_800, False)


def intent(first: int, last: int, name: str) -> BatchIntent:
    return BatchIntent(KEY, first, last, last - first + 1, f"wfm/events/{name}.parquet")


def test_recover_without_a_log_starts_empty(tmp_path: Path) -> None:
    state = StateLog.recover(tmp_path / "state.log")
    assert (state.checkpoint, state.committed, state.pending) == (0, {}, [])


def test_recover_skips_committed_ranges_and_keeps_pending_intents(tmp_path: Path) -> None:
    path = tmp_path / "state.log"
    log = StateLog(path, fsync=False)
    done, later, earlier = (
        intent(100, 199, "done"),
        intent(300, 399, "later"),
        intent(200, 299, "earlier"),
    )
    log.intent(done)
    log.intent(later)
    log.intent(earlier)
    log.commit(done.path)
    log.commit("wfm/events/never-intended.parquet")  # a stray commit is ignored
    log.close()

    state = StateLog.recover(path)
    assert state.committed == {KEY: [(100, 199)]}
    assert state.pending == [earlier, later]  # in journal order
    assert state.is_committed(KEY, 100)
    assert state.is_committed(KEY, 199)
    assert not state.is_committed(KEY, 200)
    assert not state.is_committed(("events", "globex", 19_800, False), 150)


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "state.log"
    log = StateLog(path, fsync=True)
    first, second = intent(0, 9, "first"), intent(10, 19, "second")
    log.intent(first)
    log.intent(second)
    log.commit(first.path)
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"op":"commit","path":"wfm/events/sec')  # the process died mid-write

    state = StateLog.recover(path)
    assert state.committed == {KEY: [(0, 9)]}
    assert state.pending == [second]


def test_a_rewritten_log_keeps_its_checkpoint_and_open_ranges(tmp_path: Path) -> None:
    path = tmp_path / "state.log"
    log = StateLog(path, fsync=False)
    committed, pending = intent(500, 599, "committed"), intent(600, 699, "pending")
    log.rewrite(500, [pending], [committed])
    log.commit("wfm/events/after-rewrite.parquet")  # the log stays appendable
    log.close()

    state = StateLog.recover(path)
    assert state.checkpoint == 500
    assert state.committed == {KEY: [(500, 599)]}
    assert state.pending == [pending]
    assert not (tmp_path / ".state.log.tmp").exists()


def test_intent_json_round_trip() -> None:
    original = intent(1, 2, "x")
    assert BatchIntent.from_json(orjson.loads(orjson.dumps(original.to_json()))) == original
    assert original.covers(("events", "acme", False), 19_800, 2)
    assert not original.covers(("events", "acme", True), 19_800, 2)
    assert not original.covers(("events", "acme", False), 19_801, 2)
    assert not original.covers(("events", "acme", False), 19_800, 3)
