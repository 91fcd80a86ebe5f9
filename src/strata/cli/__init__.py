"""The ``strata`` command line: a composition root wiring ingest, lake and demo together."""

from strata.cli.main import app, main

__all__ = ["app", "main"]
