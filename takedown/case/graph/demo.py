"""The fictional demo case, imported through the real importers, and what it shows.

``demo_graph`` adds every file of ``democase/`` to the evidence vault, imports them, resolves
people, then prints the candidate operators for a sinkholed C2 name, explains the path to the
first, and draws the paths. All names in the case are invented (see democase/README.md).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from takedown import lake
from takedown.case.graph.adjacency import load_adjacency
from takedown.case.graph.evidence import open_vault
from takedown.case.graph.importers import run_import
from takedown.case.graph.importers.c2 import c2_summary
from takedown.case.graph.picture import draw_routes
from takedown.case.graph.questions import candidates, explain_text
from takedown.case.graph.resolve import resolve
from takedown.case.graph.store import GraphStore
from takedown.home import Home
from takedown.output import Format, render

__all__ = ["DEMO_CASE", "DEMO_SEED", "demo_graph", "import_demo_case"]

DEMO_CASE = Path(__file__).resolve().parent / "democase"
DEMO_SEED = "domain:onlinescannow.example"
DEMO_SAMPLE = "sample:b2e2bea2cddd04b18759f0c41d0f03bab8947ecda384b11a91a644f598638ee7"
HANDLER = "takedown demo (fictional case)"

# (importer, file, options) in the order an analyst would bring them in: the aliases must be
# known before the strings dump is searched for them.
_FILES: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("links", "passive-dns.csv", {}),
    ("hosting", "hosting-export.csv", {}),
    ("payments", "payments.csv", {}),
    ("whois", "whois-registrations.csv", {}),
    ("eml", "mail/support-ticket.eml", {}),
    ("strings", "bot-sample-strings.txt", {"container": ("sample", DEMO_SAMPLE.split(":")[1])}),
    ("links", "analyst-notes.csv", {}),
)


def import_demo_case(home: Home, console: Console | None = None) -> list[str]:
    """Import the demo case into ``home`` (idempotent: files already imported are skipped)."""
    lines = []
    with open_vault(home) as door, GraphStore.open(home) as store:
        if lake.has_events(home):
            c2_file = c2_summary(home)
            lines.append(f"C2 names from this home's lake, summarised in {c2_file.name}")
        else:
            c2_file = DEMO_CASE / "sinkhole-c2.csv"
            lines.append("the lake is empty: using the demo case's C2 summary")
        report = run_import(store, door, "c2", c2_file, handler=HANDLER)
        lines.append(report.summary())
        for importer, name, options in _FILES:
            report = run_import(
                store, door, importer, DEMO_CASE / name, handler=HANDLER, options=dict(options)
            )
            lines.append(report.summary())
        for kind in ("person", "registrant"):
            lines.append(resolve(store, door, handler=HANDLER, kind=kind).summary())
    if console is not None:
        for line in lines:
            console.print(f"   {line}", highlight=False, markup=False)
    return lines


def demo_graph(home: Home, console: Console) -> list[Path]:
    """Import the fictional case, show the path from a sinkholed C2 name to the candidate."""
    console.rule("[bold]attribution: from the sinkholed C2 to the people behind it (fictional)")
    console.print(
        "Every person, nickname and account in this case is invented (democase/README.md).",
        highlight=False,
    )
    console.print("8. importing the case files into the evidence vault and the graph:")
    import_demo_case(home, console)
    written: list[Path] = []
    with GraphStore.open(home, read_only=True) as store:
        adj = load_adjacency(store)
        seed = store.resolve(DEMO_SEED)
        found = candidates(store, adj, seed, hops=8, limit=5)
        rows = [
            {
                "rank": i,
                "candidate": f"#{c.person.id} {c.person.label}",
                "records": len(c.members),
                "independent": c.independent,
                "evidence": len(c.evidence),
                "strongest": f"{c.strongest:.0%}",
                "why": c.explanation(),
            }
            for i, c in enumerate(found, 1)
        ]
        console.print(f"9. candidate operators from the sinkholed C2 name {seed.key}:")
        render(
            rows, Format.table, title="Candidates (ranked by independent evidence)", console=console
        )
        if not found:
            return written
        top = found[0]
        console.print(f"10. the strongest evidence path to #{top.person.id} {top.person.label}:")
        text = explain_text(store, top.routes[0], "Strongest evidence path (fictional case)")
        console.print(text, highlight=False, markup=False)
        out = home.root / "case" / "demo"
        written += draw_routes(
            store,
            top.routes,
            out / "candidate-paths.png",
            f"{seed.display()} … {top.person.label} (fictional)",
        )
        (out / "explain.txt").write_text(text, encoding="utf-8")
        written.append(out / "explain.txt")
    console.print(
        "11. the paths, drawn: " + ", ".join(str(p) for p in written),
        highlight=False,
    )
    console.print(
        f"    look further: takedown --home {home.root} graph candidates {DEMO_SEED}; "
        f"graph show alias:vesper2k; graph export stix --out case.json",
        highlight=False,
        markup=False,
    )
    return written
