"""Dashboards: widget rules, date ranges, and the project's ``dashboards/*.yml``.

A widget shows one metric at one grain. Its type says what shape of answer it needs:

    kpi         one value for the range, and the value of the range just before it
    timeseries  a value per period, optionally per value of one dimension
    breakdown   a value per value of one dimension, over the whole range
    funnel      a breakdown whose steps are listed, in order, by an ``in`` filter on its
                one group-by dimension (every step appears, in that order)
    heatmap     two dimensions over the whole range, or period x one dimension

A range is ``last_<n>_days``, ``last_<n>_weeks``, ``last_<n>_months``, ``month_to_date``,
``year_to_date`` (all ending today, UTC) or explicit ``YYYY-MM-DD..YYYY-MM-DD``.

One dashboard per file, ``dashboards/<name>.yml``::

    title: Workforce overview
    description: Assignments and hours.
    widgets:
      - title: Assignments by month
        type: timeseries
        metric: assignment_count
        version: 2                 # optional: pin a version; default the latest
        grain: month
        group_by: [role]
        filters: [{dimension: status, op: eq, values: [open]}]
        range: last_90_days

File dashboards belong to no tenant: every tenant sees them, over its own data.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from strata.catalog.dashboards import WIDGET_TYPES, FileDashboard, NewWidget
from strata.core.identifiers import is_valid_name
from strata.semantic.metric_compile import Filter, MetricRequestError
from strata.semantic.metrics import MetricDefinition
from strata.transform.config import Node, ProjectError, Reader, suggest
from strata.transform.project import read_yaml, relative_path, stem_name

DASHBOARDS_DIR: Final = "dashboards"
FILE_ID_PREFIX: Final = "file-"
MAX_FILE_NAME: Final = 48  # "file-<name>-<widget>" must fit the catalog's 64-character ids
MAX_WIDGETS: Final = 100
DEFAULT_RANGE: Final = "last_90_days"
MAX_RANGE_DAYS: Final = 366 * 20

_RELATIVE_RE: Final = re.compile(r"last_([1-9][0-9]{0,3})_(days|weeks|months)")
_EXPLICIT_RE: Final = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")
_DASHBOARD_KEYS: Final = ("title", "description", "widgets")
_WIDGET_KEYS: Final = (
    "title",
    "type",
    "metric",
    "version",
    "grain",
    "group_by",
    "filters",
    "range",
)


class DashboardLoadError(ProjectError):
    """The project's dashboards have problems: ``problems`` holds all of them."""

    def __init__(self, problems: list[ProjectError]) -> None:
        self.problems = tuple(problems)
        first = problems[0]
        more = len(problems) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(first.path, first.line, first.problem + extra)


# -- ranges --------------------------------------------------------------------------------


def range_problem(text: str) -> str | None:
    """Why ``text`` is not a range, or ``None``."""
    try:
        resolve_range(text, dt.date(2000, 1, 1))
    except ValueError as exc:
        return str(exc)
    return None


def resolve_range(text: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The dates ``[start, end]`` a range names on ``today``; ``ValueError`` if it is none."""
    if text == "month_to_date":
        return today.replace(day=1), today
    if text == "year_to_date":
        return today.replace(month=1, day=1), today
    relative = _RELATIVE_RE.fullmatch(text)
    if relative is not None:
        count, unit = int(relative.group(1)), relative.group(2)
        if unit == "days":
            return today - dt.timedelta(days=count - 1), today
        if unit == "weeks":
            return today - dt.timedelta(days=7 * count - 1), today
        return _months_before(today, count) + dt.timedelta(days=1), today
    explicit = _EXPLICIT_RE.fullmatch(text)
    if explicit is not None:
        try:
            start, end = (dt.date.fromisoformat(explicit.group(i)) for i in (1, 2))
        except ValueError as exc:
            raise ValueError(f"range {text!r}: {exc}") from None
        check_dates(start, end)
        return start, end
    raise ValueError(
        f"range {text[:80]!r} is not last_<n>_days|weeks|months, month_to_date, "
        "year_to_date or YYYY-MM-DD..YYYY-MM-DD"
    )


def check_dates(start: dt.date, end: dt.date) -> None:
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    if (end - start).days > MAX_RANGE_DAYS:
        raise ValueError(f"a range spans at most {MAX_RANGE_DAYS} days")


def previous_range(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The range of the same length just before ``[start, end]`` (a KPI's comparison)."""
    days = (end - start).days + 1
    return start - dt.timedelta(days=days), start - dt.timedelta(days=1)


def _months_before(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    following = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (following - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last_day))


# -- widget rules --------------------------------------------------------------------------


def widget_filters(widget: NewWidget) -> tuple[Filter, ...]:
    """The widget's filters as compiler filters; ``MetricRequestError`` if one is not valid."""
    found = []
    for index, item in enumerate(widget.filters):
        if not isinstance(item, Mapping) or set(item) != {"dimension", "op", "values"}:
            raise MetricRequestError(f"filters[{index}] must be {{dimension, op, values}}")
        values = item["values"]
        if not isinstance(values, list | tuple):
            raise MetricRequestError(f"filters[{index}].values must be a list")
        dimension, op = item["dimension"], item["op"]
        if not isinstance(dimension, str) or not isinstance(op, str):
            raise MetricRequestError(f"filters[{index}]: dimension and op must be text")
        kind: Any = op  # Filter checks it is one of FILTER_OPS
        found.append(Filter(dimension, kind, tuple(values)))
    return tuple(found)


def widget_problems(widget: NewWidget, metric: MetricDefinition) -> list[str]:
    """Why ``widget`` cannot show ``metric``; empty if it can."""
    problems: list[str] = []
    if widget.type not in WIDGET_TYPES:
        return [f"type {widget.type!r} is not one of {', '.join(WIDGET_TYPES)}"]
    if widget.grain not in metric.grains:
        problems.append(
            f"metric '{metric.key}' has no grain '{widget.grain}' "
            f"(grains: {', '.join(metric.grains)})"
        )
    allowed = ", ".join(metric.dimensions) or "none"
    for dimension in widget.group_by:
        if dimension not in metric.dimensions:
            problems.append(
                f"group_by: metric '{metric.key}' has no dimension '{dimension}' "
                f"(dimensions: {allowed})"
            )
    if len(set(widget.group_by)) != len(widget.group_by):
        problems.append("group_by lists a dimension twice")
    try:
        filters = widget_filters(widget)
    except MetricRequestError as exc:
        problems.append(str(exc))
        filters = ()
    for condition in filters:
        if condition.dimension not in metric.dimensions:
            problems.append(
                f"filters: metric '{metric.key}' has no dimension '{condition.dimension}' "
                f"(dimensions: {allowed})"
            )
    problem = range_problem(widget.default_range)
    if problem is not None:
        problems.append(problem)
    problems += _shape_problems(widget, filters)
    return problems


def _shape_problems(widget: NewWidget, filters: tuple[Filter, ...]) -> list[str]:
    dims = len(widget.group_by)
    kind = widget.type
    if kind == "kpi" and dims:
        return ["a kpi widget shows one value: it takes no group_by"]
    if kind == "timeseries" and dims > 1:
        return ["a timeseries widget takes at most one group_by dimension"]
    if kind == "breakdown" and dims != 1:
        return ["a breakdown widget takes exactly one group_by dimension"]
    if kind == "heatmap" and dims not in (1, 2):
        return ["a heatmap widget takes one group_by dimension (period x it) or two"]
    if kind == "funnel":
        if dims != 1:
            return ["a funnel widget takes exactly one group_by dimension: its steps"]
        steps = [f for f in filters if f.dimension == widget.group_by[0] and f.op == "in"]
        if len(steps) != 1 or len(steps[0].values) < 2:
            return [
                f"a funnel widget lists its steps, in order, in one 'in' filter on "
                f"'{widget.group_by[0]}' with at least two values"
            ]
    return []


def funnel_steps(widget: NewWidget) -> tuple[object, ...]:
    """The ordered step values of a (valid) funnel widget."""
    for condition in widget_filters(widget):
        if condition.dimension == widget.group_by[0] and condition.op == "in":
            return condition.values
    return ()


# -- files ---------------------------------------------------------------------------------


MetricLookup = Callable[[str, int | None], MetricDefinition | None]


def load_dashboards(
    project_root: str | os.PathLike[str],
    metrics: Mapping[str, MetricDefinition],
    *,
    dashboards_dir: str = DASHBOARDS_DIR,
) -> list[FileDashboard]:
    """The dashboards in ``<root>/dashboards/*.yml``; ``DashboardLoadError`` with every
    problem. Widgets pinning a version other than the file metric's are checked later,
    against the registry (``pinned_problems``)."""
    dashboards, problems = _load(Path(project_root), metrics, dashboards_dir)
    if problems:
        raise DashboardLoadError(problems)
    return dashboards


def validate_dashboards(
    project_root: str | os.PathLike[str],
    metrics: Mapping[str, MetricDefinition],
    *,
    dashboards_dir: str = DASHBOARDS_DIR,
) -> list[ProjectError]:
    return _load(Path(project_root), metrics, dashboards_dir)[1]


def pinned_problems(dashboards: list[FileDashboard], lookup: MetricLookup) -> list[str]:
    """Problems of widgets whose metric version is not the file's, checked with ``lookup``
    (the registry). One line each, naming the dashboard and widget."""
    problems = []
    for dashboard in dashboards:
        for index, widget in enumerate(dashboard.widgets):
            where = f"{DASHBOARDS_DIR}/{dashboard.id.removeprefix(FILE_ID_PREFIX)}.yml"
            metric = lookup(widget.metric_key, widget.metric_version)
            if metric is None:
                problems.append(
                    f"{where}: widgets[{index}]: metric '{widget.metric_key}' has no registered "
                    f"version {widget.metric_version}"
                )
                continue
            problems += [f"{where}: widgets[{index}]: {p}" for p in widget_problems(widget, metric)]
    return problems


def _load(
    root: Path, metrics: Mapping[str, MetricDefinition], dashboards_dir: str
) -> tuple[list[FileDashboard], list[ProjectError]]:
    problems: list[ProjectError] = []
    found: list[FileDashboard] = []
    folder = root / dashboards_dir
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        rel = relative_path(root, path)
        if path.suffix == ".yaml":
            problems.append(
                ProjectError(
                    rel, None, f"dashboard files end in .yml: rename it to {path.stem}.yml"
                )
            )
            continue
        if path.suffix != ".yml":
            continue
        stem = stem_name(path.stem, "dashboard", rel, problems)
        if stem is not None and len(stem) > MAX_FILE_NAME:
            problems.append(
                ProjectError(
                    rel, None, f"dashboard file names have at most {MAX_FILE_NAME} characters"
                )
            )
            continue
        node = read_yaml(path, rel, problems)
        if stem is None or node is None:
            continue
        before = len(problems)
        dashboard = _read_dashboard(stem, node, rel, metrics, problems)
        if dashboard is not None and len(problems) == before:
            found.append(dashboard)
    return found, problems


def _read_dashboard(
    stem: str,
    node: Node,
    path: str,
    metrics: Mapping[str, MetricDefinition],
    problems: list[ProjectError],
) -> FileDashboard | None:
    reader = Reader(path, problems)
    items = reader.mapping(node, "a dashboard")
    if items is None:
        return None
    reader.check_keys(items, _DASHBOARD_KEYS, {})
    title = reader.text(items.get("title"), "title")
    if "title" not in items:
        reader.problem(node.line, "a dashboard needs a 'title'")
    description = reader.text(items.get("description"), "description") or ""
    widgets: list[NewWidget] = []
    listed = items.get("widgets")
    if listed is not None and not isinstance(listed.value, list):
        reader.problem(listed.line, "widgets must be a list")
    elif listed is not None:
        nodes: list[Node] = listed.value  # type: ignore[assignment]  # a list of Node
        if len(nodes) > MAX_WIDGETS:
            reader.problem(listed.line, f"a dashboard has at most {MAX_WIDGETS} widgets")
        for index, item in enumerate(nodes):
            widget = _read_widget(reader, item, index, metrics)
            if widget is not None:
                widgets.append(widget)
    if title is None:
        return None
    return FileDashboard(f"{FILE_ID_PREFIX}{stem}", title, description, tuple(widgets))


def _read_widget(
    reader: Reader, node: Node, index: int, metrics: Mapping[str, MetricDefinition]
) -> NewWidget | None:
    where = f"widgets[{index}]"
    items = reader.mapping(node, where)
    if items is None:
        return None
    before = len(reader.problems)
    reader.check_keys(items, _WIDGET_KEYS, {})
    for required in ("title", "type", "metric", "grain"):
        if required not in items:
            reader.problem(node.line, f"{where} needs a '{required}'")
    title = reader.text(items.get("title"), f"{where}.title")
    kind = reader.text(items.get("type"), f"{where}.type")
    key = reader.text(items.get("metric"), f"{where}.metric")
    grain = reader.text(items.get("grain"), f"{where}.grain")
    version_node = items.get("version")
    raw_version = None if version_node is None else version_node.value
    version = raw_version if type(raw_version) is int and raw_version >= 1 else None
    if raw_version is not None and version is None:
        reader.problem(
            node.line if version_node is None else version_node.line,
            f"{where}.version must be a positive whole number",
        )
    group_by = _plain(items["group_by"]) if "group_by" in items else []
    if not isinstance(group_by, list) or not all(isinstance(d, str) for d in group_by):
        reader.problem(items["group_by"].line, f"{where}.group_by must be a list of dimensions")
    filters = _plain(items["filters"]) if "filters" in items else []
    if not isinstance(filters, list):
        reader.problem(items["filters"].line, f"{where}.filters must be a list")
    range_text = reader.text(items.get("range"), f"{where}.range") or DEFAULT_RANGE
    if len(reader.problems) > before or None in (title, kind, key, grain):
        return None
    assert title is not None
    assert kind is not None
    assert key is not None
    assert grain is not None
    if kind not in WIDGET_TYPES:
        reader.problem(
            items["type"].line, f"{where}.type '{kind}' is not one of {', '.join(WIDGET_TYPES)}"
        )
        return None
    if not is_valid_name(key) or key not in metrics:
        reader.problem(
            items["metric"].line,
            f"{where}: unknown metric '{key}'{suggest(key, metrics, list_all=False)}",
        )
        return None
    widget = NewWidget(
        title=title,
        type=kind,  # checked against WIDGET_TYPES above
        metric_key=key,
        metric_version=version,
        grain=grain,
        group_by=tuple(group_by),
        filters=tuple(filters),
        default_range=range_text,
    )
    metric = metrics[key]
    if version is None or version == metric.version:
        for problem in widget_problems(widget, metric):
            reader.problem(node.line, f"{where}: {problem}")
    if len(reader.problems) > before:
        return None
    return widget


def _plain(node: Node) -> Any:
    """A YAML node as plain Python values (lines dropped)."""
    value = node.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):  # YAML reads 2024-01-31 as a date; stored as JSON text
        return value.isoformat()
    return value
