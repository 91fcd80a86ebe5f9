"""The lake: storage URLs and the bronze path scheme."""

from strata.lake.paths import BronzeFile, BronzePartition, InvalidBronzePathError, parse_bronze_path
from strata.lake.storage import (
    FsspecStorage,
    LakeStorage,
    LakeUnavailableError,
    LocalStorage,
    StoredFile,
    open_lake,
)

__all__ = [
    "BronzeFile",
    "BronzePartition",
    "FsspecStorage",
    "InvalidBronzePathError",
    "LakeStorage",
    "LakeUnavailableError",
    "LocalStorage",
    "StoredFile",
    "open_lake",
    "parse_bronze_path",
]
