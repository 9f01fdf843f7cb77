"""`takedown legal …`: seizure lists, notice by publication, the service log."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Court documents: seizure lists, notice by publication, the service log.",
    no_args_is_help=True,
)
