"""`takedown evidence …`: the evidence vault's commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Tamper-evident evidence: add items, record custody, verify, export bundles.",
    no_args_is_help=True,
)
