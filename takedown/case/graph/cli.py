"""`takedown graph …`: the attribution graph's commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Attribution graph: entities, evidence-cited links, paths from C2 to people.",
    no_args_is_help=True,
)
