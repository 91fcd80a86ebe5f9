"""What a data-quality check declares: its kind, its column(s), its thresholds and severity.

Checks are plain values, parsed from YAML by ``strata.quality.parse`` and compiled into
scans by ``strata.quality.plan``. Semantics follow dbt's tests and SodaCL's metrics:

* row checks count failing *rows* (``not_null``, ``relationships``, ``format``, ``range``,
  ``expression``), except ``unique`` and ``accepted_values``, which count failing *distinct
  values*; NULLs pass ``unique``, ``accepted_values``, ``relationships``, ``format``,
  ``range`` and ``expression`` (a NULL is "missing", not "invalid"; ``not_null`` is the
  check for missing values). A row check fails when its count exceeds ``max_failures``
  (default 0).
* table checks measure one value per tenant and compare it with bounds: ``row_count``,
  ``freshness`` (age of the newest timestamp, with separate warn and error ages),
  ``duplicate_count`` (rows beyond the first of each key: three rows of one key are two
  duplicates; rows with a NULL in the key are not counted), ``null_rate``,
  ``distinct_count`` (NULL is not a value) and ``schema``.
* drift checks compare a measure with the median of the same table's and tenant's last
  ``window`` recorded values: ``row_count_drift`` (relative change) and ``null_rate_drift``
  (absolute change of the rate); warn and error are the two change thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, get_args

Severity = Literal["warn", "error"]
CheckKind = Literal[
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "format",
    "range",
    "expression",
    "row_count",
    "freshness",
    "duplicate_count",
    "null_rate",
    "distinct_count",
    "schema",
    "row_count_drift",
    "null_rate_drift",
]
CHECK_KINDS: Final[tuple[CheckKind, ...]] = get_args(CheckKind)
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)
FormatName = Literal["email", "phone", "uuid", "regex"]

# Patterns for the named formats. Deliberately pragmatic (what validators in Soda and
# Great Expectations accept), not RFC-complete: an address with a local part, one @ and a
# dotted domain; a phone number in E.164 or a common national notation.
FORMAT_PATTERNS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "email": r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$",
        "phone": r"^\+?\(?[0-9][0-9 ().-]{5,19}[0-9]$",
        "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    }
)

ROW_KINDS: Final = frozenset(
    {"not_null", "unique", "accepted_values", "relationships", "format", "range", "expression"}
)
DRIFT_KINDS: Final = frozenset({"row_count_drift", "null_rate_drift"})


@dataclass(frozen=True, slots=True)
class Bounds:
    """An inclusive interval; either end may be open."""

    low: float | None = None
    high: float | None = None

    def holds(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"between {_num(self.low)} and {_num(self.high)}"
        if self.low is not None:
            return f">= {_num(self.low)}"
        if self.high is not None:
            return f"<= {_num(self.high)}"
        return "any"


@dataclass(frozen=True, slots=True)
class Check:
    """One declared check on one table.

    Only the fields its kind uses are set: ``columns`` (one, or several for a compound
    ``unique``/``duplicate_count``), ``values`` (accepted_values), ``to_table``/``to_column``
    (relationships), ``pattern`` (format), ``sql`` (expression), ``bounds`` (range and the
    table measures), ``warn_after_s``/``error_after_s`` (freshness), ``expected_columns``
    (schema), ``window``/``warn_change``/``error_change``/``min_history`` (drift).
    """

    name: str
    kind: CheckKind
    table: str  # qualified: silver.workers
    severity: Severity = "error"
    columns: tuple[str, ...] = ()
    values: tuple[object, ...] = ()
    to_table: str | None = None
    to_column: str | None = None
    pattern: str | None = None
    format_name: FormatName | None = None
    sql: str | None = None
    bounds: Bounds = Bounds()
    max_failures: int = 0
    warn_after_s: float | None = None
    error_after_s: float | None = None
    expected_columns: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    allow_extra_columns: bool = True
    window: int = 7
    warn_change: float = 0.1
    error_change: float = 0.3
    min_history: int = 3
    where: str | None = None  # an optional SQL filter: only these rows are checked
    path: str = ""  # where it was declared, for messages: models/silver/workers.yml:12
    line: int | None = None

    @property
    def column(self) -> str:
        return self.columns[0]

    @property
    def location(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class TableChecks:
    """Every check declared on one table, in declaration order."""

    table: str
    checks: tuple[Check, ...]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
