"""Alembic's command line over the packaged scripts, for Strata developers.

    python -m strata.catalog.migrations history
    python -m strata.catalog.migrations -x url=sqlite:///tmp/c.db upgrade head
    python -m strata.catalog.migrations -x url=postgresql://u@h/db upgrade head --sql
    python -m strata.catalog.migrations revision --rev-id 0002 -m "add tenants"

The database comes from ``-x url=...`` (default: ``$STRATA_CATALOG_URL`` or the catalog of
the project in the current folder). Name revisions ``NNNN_slug.py`` with ``--rev-id NNNN``.
"""

from __future__ import annotations

import sys

from alembic.config import CommandLine

from strata.catalog.migrate import alembic_config


def main(argv: list[str] | None = None) -> None:
    cli = CommandLine(prog="python -m strata.catalog.migrations")
    options = cli.parser.parse_args(sys.argv[1:] if argv is None else argv)
    config = alembic_config()
    config.cmd_opts = options
    cli.run_cmd(config, options)


if __name__ == "__main__":
    main()
