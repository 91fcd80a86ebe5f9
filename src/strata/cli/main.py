"""The ``strata`` command: global options, the command tree, and error handling in one place.

Every command raises; none prints its own errors. ``StrataGroup.invoke`` turns a
``StrataError`` into ``error: <message>`` and exit code 2, Ctrl-C into 130, and anything
unexpected into a one-line message and exit code 1 (with the traceback only under
``--log-level debug``).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

import strata
from strata.cli import (
    check_cmd,
    demo_cmd,
    extract_cmd,
    ingest_cmd,
    keys_cmd,
    lake_cmd,
    project_cmd,
    run_cmd,
    serve_cmd,
    sink_cmd,
)
from strata.cli.console import print_error
from strata.core.errors import StrataError
from strata.core.logging import configure

if TYPE_CHECKING:  # typer vendors click; its Context is only needed to type the override
    from typer._click import Context

EXIT_UNEXPECTED = 1
EXIT_STRATA_ERROR = 2  # the same code as a usage error: the input or setup needs fixing
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class StrataGroup(TyperGroup):
    """The root command group; subcommands run inside its ``invoke``, so errors end here."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # the framework's own exits and usage errors
        except StrataError as exc:
            print_error(str(exc))
            raise typer.Exit(EXIT_STRATA_ERROR) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if logging.getLogger("strata").isEnabledFor(logging.DEBUG):
                raise
            print_error(
                f"unexpected {type(exc).__name__}: {exc} "
                "(run with --log-level debug for the traceback)"
            )
            raise typer.Exit(EXIT_UNEXPECTED) from None


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _package_version() -> str:
    try:
        return version("stratalake")
    except PackageNotFoundError:  # running from a source tree without metadata
        return strata.__version__


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"strata {_package_version()}")
        raise typer.Exit


app = typer.Typer(
    cls=StrataGroup,
    name="strata",
    help="Strata: a multi-tenant analytics lakehouse. Land records in bronze and inspect the lake.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # tracebacks are for --log-level debug only
)


@app.callback()
def root(
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            envvar="STRATA_LOG_LEVEL",
            case_sensitive=False,
            help="How much to log to stderr; 'debug' also shows tracebacks of unexpected errors.",
        ),
    ] = LogLevel.warning,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            envvar="STRATA_LOG_FORMAT",
            case_sensitive=False,
            help="Log lines as human-readable text or as one JSON object per line.",
        ),
    ] = LogFormat.text,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the Strata version and exit.",
        ),
    ] = False,
) -> None:
    """Strata: land records in the bronze lake, inspect it, and load a demo."""
    configure(log_level.value, log_format.value)


app.command(name="ingest", no_args_is_help=True)(ingest_cmd.ingest)
app.command(name="demo")(demo_cmd.demo)
app.command(name="extract", no_args_is_help=True)(extract_cmd.extract)
app.add_typer(lake_cmd.app, name="lake")
app.command(name="init")(project_cmd.init)
app.command(name="validate")(project_cmd.validate)
app.command(name="run")(run_cmd.run)
app.command(name="show")(run_cmd.show)
app.command(name="compile")(run_cmd.compile_model)
app.add_typer(check_cmd.app, name="check")
app.add_typer(keys_cmd.app, name="keys")
app.command(name="serve")(serve_cmd.serve)
app.add_typer(sink_cmd.app, name="sink")


def main() -> None:
    """Console-script entry point (``strata = "strata.cli.main:main"``)."""
    app(prog_name="strata")
