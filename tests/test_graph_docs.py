"""docs/graph.md says what the code does: every kind, importer, command and default."""

from pathlib import Path

from typer.main import get_command

from takedown.case.graph.cli import app
from takedown.case.graph.importers import IMPORTERS
from takedown.case.graph.model import ENTITY_KINDS, LINK_KINDS, UNKNOWN_PRIOR
from takedown.case.graph.questions import SAME_AS_GROUPING

DOC = (Path(__file__).resolve().parent.parent / "docs" / "graph.md").read_text()


def test_every_kind_importer_and_command_is_documented():
    for kind in [*ENTITY_KINDS, *LINK_KINDS]:
        assert f"| `{kind}` |" in DOC, kind
    for name in IMPORTERS:
        assert f"**`{name}`**" in DOC, name
    for name in get_command(app).commands:  # type: ignore[attr-defined]
        assert f"`{name}" in DOC or f"graph {name}" in DOC, name


def test_stated_numbers_match():
    assert f"low prior of {UNKNOWN_PRIOR}%" in DOC
    assert f"confidence ≥ {SAME_AS_GROUPING}" in DOC
