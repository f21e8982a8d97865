"""Where the commands print their tables: rich squeezes a table to 80 columns when stdout is not a
terminal (a log file, a pipe, CI), so a column of model names reads ``mod…``. Off a terminal, tables are
printed at their natural width instead; on one, they fit the window as rich does."""

from __future__ import annotations

import sys

from rich.console import Console

NATURAL_WIDTH = 1000
"""Columns allowed off a terminal: wider than any table the commands print, so none is squeezed (rich
tables take the width they need, not the console's)."""


def table_console() -> Console:
    """A console on stdout for tables: the terminal's width on a terminal, the tables' own width elsewhere."""
    return Console() if sys.stdout.isatty() else Console(width=NATURAL_WIDTH)
