"""The writer's own log: which journal ranges became which lake files.

Each batch is one stream's records in the position range ``[first, last]``. Before its
file is written the writer appends an *intent* naming the range and the file; after the
file is in the lake, a *commit*. On replay, a committed range is skipped, and an intent
without a commit is rebuilt from exactly the same records under exactly the same name, so
a crash between writing the file and committing it yields the same file again, not a copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson

from strata.ingest.journal import StreamKey

BatchKey = tuple[str, str, int, bool]
"""(table, tenant, day number, quarantined): the unit that becomes one lake file."""


@dataclass(frozen=True, slots=True)
class BatchIntent:
    key: BatchKey
    first: int
    last: int
    count: int
    path: str  # lake-relative file path

    def covers(self, stream: StreamKey, day: int, pos: int) -> bool:
        return self.first <= pos <= self.last and self.key == (stream[0], stream[1], day, stream[2])

    def to_json(self) -> dict[str, object]:
        return {
            "key": list(self.key),
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "path": self.path,
        }

    @staticmethod
    def from_json(data: dict[str, object]) -> BatchIntent:
        table, tenant, day, quarantined = cast(list[Any], data["key"])
        numbers = cast(dict[str, int], data)
        return BatchIntent(
            (str(table), str(tenant), int(day), bool(quarantined)),
            int(numbers["first"]),
            int(numbers["last"]),
            int(numbers["count"]),
            str(data["path"]),
        )


@dataclass(slots=True)
class RecoveredState:
    checkpoint: int = 0  # every position below it is committed
    committed: dict[BatchKey, list[tuple[int, int]]] = field(default_factory=dict)
    pending: list[BatchIntent] = field(default_factory=list)  # intents without a commit

    def is_committed(self, key: BatchKey, pos: int) -> bool:
        return any(first <= pos <= last for first, last in self.committed.get(key, ()))


class StateLog:
    """Append-only JSON lines; fsynced where the ordering guarantees above need it."""

    def __init__(self, path: Path, *, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    @staticmethod
    def recover(path: Path) -> RecoveredState:
        state = RecoveredState()
        if not path.exists():
            return state
        intents: dict[str, BatchIntent] = {}
        for line in path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                break  # a torn last line from a crash; nothing after it was acknowledged
            op = entry.get("op")
            if op == "intent":
                intent = BatchIntent.from_json(entry)
                intents[intent.path] = intent
            elif op == "commit":
                done = intents.pop(entry["path"], None)
                if done is not None:
                    state.committed.setdefault(done.key, []).append((done.first, done.last))
            elif op == "checkpoint":
                state.checkpoint = max(state.checkpoint, int(entry["low"]))
        state.pending = sorted(intents.values(), key=lambda i: i.first)
        return state

    def _append(self, entry: dict[str, object], *, sync: bool) -> None:
        os.write(self._fd, orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
        if sync and self.fsync:
            os.fsync(self._fd)

    def intent(self, intent: BatchIntent) -> None:
        self._append({"op": "intent", **intent.to_json()}, sync=True)

    def commit(self, path: str) -> None:
        # Not fsynced: losing a commit only means the same file is written once more.
        self._append({"op": "commit", "path": path}, sync=False)

    def rewrite(
        self, checkpoint: int, pending: list[BatchIntent], committed: list[BatchIntent]
    ) -> None:
        """Compact to what replay still needs: ranges at or above the checkpoint."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        lines = [orjson.dumps({"op": "checkpoint", "low": checkpoint})]
        for intent in [*committed, *pending]:
            lines.append(orjson.dumps({"op": "intent", **intent.to_json()}))
        lines.extend(orjson.dumps({"op": "commit", "path": i.path}) for i in committed)
        tmp.write_bytes(b"\n".join(lines) + b"\n")
        if self.fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
