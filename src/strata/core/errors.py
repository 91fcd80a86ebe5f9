"""The root of Strata's exception tree.

    StrataError                 every error Strata raises on purpose
    ├── Transient               worth retrying: the same call may succeed later
    ├── Terminal                retrying will not help: the input or setup is wrong
    │   ├── ConfigError         a setting, URL or project file is wrong
    │   └── InvalidIdentifierError
    └── (package errors subclass one of the two, e.g. ``ingest.errors``)

Errors carry structured fields (``tenant``, ``table`` ...) so that the CLI and the API can
show a one-line message and logs can be filtered, without parsing text.
"""

from __future__ import annotations


class StrataError(Exception):
    """Base of every error Strata raises on purpose; ``str()`` is the user-facing message."""


class Transient(StrataError):  # noqa: N818 - the marker names the retry policy, not an error kind
    """A failure that may go away on its own (a lake outage, a timeout)."""


class Terminal(StrataError):  # noqa: N818
    """A failure that retrying will not fix (bad input, bad configuration)."""


class ConfigError(Terminal):
    """A setting, URL or project file is wrong."""


class InvalidIdentifierError(Terminal, ValueError):
    """A tenant, table or namespace name breaks the identifier rules."""

    def __init__(self, kind: str, value: object, rule: str) -> None:
        self.kind = kind
        self.value = value
        self.rule = rule
        super().__init__(f"invalid {kind} {_short_repr(value)}: {rule}")


def _short_repr(value: object, limit: int = 80) -> str:
    """repr() for messages: bounded, and safe for ints too large to print."""
    if isinstance(value, int) and value.bit_length() > 200:
        return f"<int of {value.bit_length()} bits>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
