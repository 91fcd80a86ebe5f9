"""Terminal output shared by the commands: consoles, progress bars, number formats.

Consoles are built per call, not at import, so they follow whatever ``sys.stdout`` and
``sys.stderr`` are when a command runs (a test runner swaps them).
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)  # messages stay whole lines when piped


def stderr() -> Console:
    # soft_wrap: an error message stays one line, whatever the terminal width.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    # Text, not markup: messages quote user input, which may contain "[...]".
    stderr().print(Text(f"error: {message}", style="red"))


def print_warning(message: str) -> None:
    stderr().print(Text(f"warning: {message}", style="yellow"))


def progress_bar() -> Progress:
    """A bar on stderr, so stdout stays clean for piping; it vanishes when done.

    Off when stderr is not a terminal: there is no one to watch it, and rich would leave
    a blank line behind in logs.
    """
    console = stderr()
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def count(n: int) -> str:
    return f"{n:,}"


def plural(n: int, noun: str) -> str:
    """``1 tenant``, ``2 tenants``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def size(n: int) -> str:
    """Bytes in binary units, e.g. ``1.5 MiB``."""
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
