"""Structured logging: stdlib ``logging`` with fields in ``extra``, rendered as JSON or text.

Library code only calls ``get_logger(__name__).info("batch committed", extra=fields(...))``;
handlers are configured by the composition root (the CLI), never at import time.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def fields(**values: Any) -> dict[str, Any]:
    """Wrap structured fields for ``extra=``; keeps call sites short and greppable."""
    return values


def structured_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every structured field."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **structured_fields(record),
        }
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


class KeyValueFormatter(logging.Formatter):
    """Human-readable ``message key=value ...`` lines for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in structured_fields(record).items())
        base = f"{record.levelname.lower():7} {record.name}: {record.getMessage()}"
        return f"{base} {extra}" if extra else base


def configure(level: str = "WARNING", fmt: str = "text") -> None:
    """Install one stderr handler on the ``strata`` logger (idempotent)."""
    logger = logging.getLogger("strata")
    logger.setLevel(level.upper())
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    logger.addHandler(handler)
    logger.propagate = False
