"""Lake storage backends behind one small interface.

A lake is a URL: a local folder (the default, ``./lake``) or any fsspec URL (``s3://``,
``abfs://``/``az://``, ``gs://``, ``memory://``). Every backend guarantees the one property the
ingest writer relies on: ``write_atomic`` makes a file appear whole under its final name or
not at all, and writing the same path again replaces it (so a retried batch is one file).
"""

from __future__ import annotations

import importlib
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from strata.core.errors import ConfigError, Transient


class LakeUnavailableError(Transient):
    """The lake could not be reached or refused a write; the writer retries these."""

    def __init__(self, url: str, operation: str, cause: BaseException) -> None:
        self.url = url
        self.operation = operation
        super().__init__(f"lake {url} failed to {operation}: {cause}")


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: str  # relative to the lake root, '/'-separated
    size: int


class LakeStorage(ABC):
    """A lake root. Paths are relative, '/'-separated, and never start with '/'."""

    url: str

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """How to open this same storage in another process (see ``storage_from_spec``)."""

    @abstractmethod
    def write_atomic(self, path: str, data: bytes | memoryview) -> None:
        """Write ``data`` so readers see the whole file or nothing; overwrite if present."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def open_input(self, path: str) -> BinaryIO:
        """A seekable binary stream (Parquet readers need seeks to read footers)."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def list_files(self, prefix: str = "", suffix: str = "") -> Iterator[StoredFile]:
        """Every file under ``prefix`` whose name ends with ``suffix``; temp files excluded."""


class LocalStorage(LakeStorage):
    """A folder on local disk: write to a hidden temp name, fsync, then rename into place."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)
        self.fsync = fsync
        self._known_dirs: set[Path] = set()  # partitions already created: skip the mkdir walk

    def spec(self) -> dict[str, Any]:
        return {
            "factory": "strata.lake.storage:LocalStorage",
            "kwargs": {"root": str(self.root), "fsync": self.fsync},
        }

    def _full(self, path: str) -> Path:
        if path.startswith("/") or ".." in path.split("/"):
            raise ConfigError(f"lake paths are relative and may not leave the lake: {path!r}")
        return self.root / path

    def write_atomic(self, path: str, data: bytes | memoryview) -> None:
        target = self._full(path)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            fd = self._create(target.parent, tmp)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            if self.fsync:
                _fsync_dir(target.parent)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # e.g. the parent is not a directory: there is no temp file to remove
            raise LakeUnavailableError(self.url, f"write {path}", exc) from exc

    def _create(self, directory: Path, tmp: Path) -> int:
        """Open a new temp file, making its partition directory once (and again if removed)."""
        if directory not in self._known_dirs:
            directory.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(directory)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            self._known_dirs.discard(directory)  # removed behind our back: create it again
            directory.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(directory)
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def read_bytes(self, path: str) -> bytes:
        return self._full(path).read_bytes()

    def open_input(self, path: str) -> BinaryIO:
        return open(self._full(path), "rb")

    def exists(self, path: str) -> bool:
        return self._full(path).exists()

    def list_files(self, prefix: str = "", suffix: str = "") -> Iterator[StoredFile]:
        base = self._full(prefix) if prefix else self.root
        if not base.exists():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                if name.startswith(".") or not name.endswith(suffix):
                    continue
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                yield StoredFile(rel, (Path(dirpath) / name).stat().st_size)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsspecStorage(LakeStorage):
    """Object stores and remote file systems through fsspec.

    ``pipe_file`` is a single PUT (or a multipart upload completed in one call), so an object
    appears whole or not at all: the atomicity the writer needs, without a rename.
    """

    def __init__(
        self, url: str, fs: Any, root: str, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {})

    def spec(self) -> dict[str, Any]:
        return {
            "factory": "strata.lake.storage:open_lake",
            "kwargs": {"url": self.url, "storage_options": self.storage_options},
        }

    def _full(self, path: str) -> str:
        if path.startswith("/") or ".." in path.split("/"):
            raise ConfigError(f"lake paths are relative and may not leave the lake: {path!r}")
        return f"{self.root}/{path}" if path else self.root

    def write_atomic(self, path: str, data: bytes | memoryview) -> None:
        full = self._full(path)  # outside the try: a bad path is a ConfigError, not an outage
        try:
            self.fs.pipe_file(full, bytes(data))
        except Exception as exc:  # fsspec backends raise anything from OSError to botocore errors
            raise LakeUnavailableError(self.url, f"write {path}", exc) from exc

    def read_bytes(self, path: str) -> bytes:
        data: bytes = self.fs.cat_file(self._full(path))
        return data

    def open_input(self, path: str) -> BinaryIO:
        stream: BinaryIO = self.fs.open(self._full(path), "rb")
        return stream

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(self._full(path)))

    def list_files(self, prefix: str = "", suffix: str = "") -> Iterator[StoredFile]:
        base = self._full(prefix)
        self.fs.invalidate_cache()
        if not self.fs.exists(base):
            return
        found: Mapping[str, Mapping[str, Any]] = self.fs.find(base, detail=True)
        strip = len(self.root) + 1
        for full in sorted(found):
            info = found[full]
            name = full.rsplit("/", 1)[-1]
            if info.get("type") == "directory" or name.startswith(".") or not name.endswith(suffix):
                continue
            yield StoredFile(full[strip:], int(info.get("size") or 0))


_EXTRAS = {"s3": "s3", "s3a": "s3", "abfs": "azure", "abfss": "azure", "az": "azure"}


def open_lake(url: str, storage_options: Mapping[str, Any] | None = None) -> LakeStorage:
    """Resolve a lake URL to its backend; a missing optional driver is a ``ConfigError``."""
    if "://" not in url or url.startswith("file://"):
        return LocalStorage(url.removeprefix("file://"))
    import fsspec  # imported here: local lakes never pay for fsspec's registry

    protocol = url.split("://", 1)[0]
    try:
        fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except ImportError as exc:
        extra = _EXTRAS.get(protocol)
        hint = f"; install it with: pip install 'stratalake[{extra}]'" if extra else ""
        raise ConfigError(f"no driver for lake URL {url!r}{hint}") from exc
    except ValueError as exc:
        raise ConfigError(f"unsupported lake URL {url!r}: {exc}") from exc
    return FsspecStorage(url, fs, root, storage_options)


def storage_from_spec(spec: Mapping[str, Any]) -> LakeStorage:
    """Rebuild a storage from ``LakeStorage.spec()`` (used by the writer process)."""
    module_name, _, attr = str(spec["factory"]).partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    kwargs = dict(spec.get("kwargs", {}))
    for key, value in kwargs.items():
        if isinstance(value, dict) and "factory" in value:
            kwargs[key] = storage_from_spec(value)
    storage = factory(**kwargs)
    if not isinstance(storage, LakeStorage):
        raise ConfigError(f"storage factory {spec['factory']} did not return a LakeStorage")
    return storage
