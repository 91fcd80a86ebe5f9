"""Errors of model compilation, linting, the model DAG and model selection.

    TransformError (Terminal)       a project's models are wrong; rerunning will not help
    ├── ModelSqlError               a model's SQL is not one readable SELECT over the lake
    ├── SilverRuleError             a silver model does more than structural work
    ├── MissingReferenceError       a model reads a model or bronze table that does not exist
    ├── DependencyCycleError        models read each other in a loop
    └── SelectionError              a ``--select`` / ``--exclude`` expression is wrong

Each carries the names a user needs to find the problem (``model``, ``reference``,
``cycle`` ...) so the CLI and the API can print one line and logs can filter on fields.
"""

from __future__ import annotations

from strata.core.errors import Terminal


class TransformError(Terminal):
    """A problem with the project's models that retrying will not fix."""


class ModelSqlError(TransformError):
    """The model's SQL cannot be used: malformed, not a single query, or reads files."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"model '{model}': {reason}")


class SilverRuleError(TransformError):
    """A silver model joins, aggregates, dedupes or reads more than its one bronze table."""

    def __init__(self, model: str, findings: tuple[str, ...]) -> None:
        self.model = model
        self.findings = findings
        super().__init__(
            f"silver model '{model}' must only cast, rename, handle nulls and filter one "
            f"bronze table, but it has: {'; '.join(findings)}"
        )


class MissingReferenceError(TransformError, LookupError):
    """``reference`` is a model name or ``bronze.<namespace>.<table>``."""

    def __init__(self, model: str, reference: str, suggestions: tuple[str, ...] = ()) -> None:
        self.model = model
        self.reference = reference
        self.suggestions = suggestions
        kind = "bronze table" if reference.startswith("bronze.") else "model"
        hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"model '{model}' reads '{reference}', which is not a known {kind}{hint}")


class DependencyCycleError(TransformError):
    """``cycle`` lists the models in reading order: each reads the next, the last the first."""

    def __init__(self, cycle: tuple[str, ...]) -> None:
        self.cycle = cycle
        path = " -> ".join((*cycle, cycle[0]))
        super().__init__(f"models form a cycle: {path} (each model reads the next)")


class SelectionError(TransformError, ValueError):
    def __init__(self, selector: str, reason: str) -> None:
        self.selector = selector
        self.reason = reason
        super().__init__(f"cannot select '{selector}': {reason}")
