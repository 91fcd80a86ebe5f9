"""Options several commands share, declared once so their names and help stay the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import typer

DEFAULT_LAKE: Final = "./lake"

Lake = Annotated[
    str,
    typer.Option(
        "--lake",
        envvar="STRATA_LAKE",
        help="Lake folder or URL (s3://, abfs://, gs://, memory://).",
        show_envvar=True,
    ),
]

JournalDir = Annotated[
    Path | None,
    typer.Option(
        "--journal-dir",
        file_okay=False,
        help="Where the ingest journal lives until records land "
        "(default: $STRATA_JOURNAL_DIR or .strata/journal).",
    ),
]
