"""`takedown graph …`: the attribution graph's commands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from takedown.errors import GraphError
from takedown.output import Format, render

app = typer.Typer(
    help="Attribution graph: entities, evidence-cited links, paths from C2 to people.",
    no_args_is_help=True,
)

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


def _home() -> Any:
    from takedown import cli as _cli

    return _cli.current_home()


def _handler() -> str:
    from takedown import cli as _cli

    handler = str(_cli.current_settings().handler or "").strip()
    if not handler:
        raise GraphError(
            "who asserts this? set the handler: TAKEDOWN_HANDLER=name, or handler = '…' in "
            "HOME/config.toml"
        )
    return handler


def _emit(rows: Any, fmt: Format, title: str) -> None:
    from takedown import cli as _cli

    text = render(rows, fmt, title=title or None, console=_cli.out)
    if text is not None:
        sys.stdout.write(text)


def _say(text: str) -> None:
    from takedown import cli as _cli

    _cli.out.print(text, highlight=False, markup=False)


def _note(text: str) -> None:
    from takedown import cli as _cli

    _cli.err.print(text, highlight=False, markup=False)


@contextmanager
def _store(read_only: bool = True) -> Iterator[Any]:
    from takedown.case.graph.store import GraphStore

    with GraphStore.open(_home(), read_only=read_only) as store:
        yield store


@contextmanager
def _writing() -> Iterator[tuple[Any, Any]]:
    from takedown.case.graph.evidence import open_vault
    from takedown.case.graph.store import GraphStore

    home = _home()
    with open_vault(home) as door, GraphStore.open(home) as store:
        yield store, door


@app.command("import")
def import_cmd(
    importer: Annotated[
        str,
        typer.Argument(help="whois, hosting, payments, eml, strings, c2, links or stix."),
    ],
    files: Annotated[
        list[Path] | None, typer.Argument(help="Files to import (c2: none = from the lake).")
    ] = None,
    provider: Annotated[
        str | None, typer.Option(help="hosting/payments: provider when the file has none.")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Region (e.g. RU) for phone numbers without +code.")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="strings: where the text was found (server:…, sample:…)."),
    ] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Import a file already imported once more.")
    ] = False,
) -> None:
    """Add each file to the evidence vault, then import its records as evidence-cited links.

    A bad record never stops the file: it is counted and kept with its error in
    HOME/case/rejects/. Formats: docs/graph.md.

    Example: takedown graph import whois registrations.csv
    """
    from takedown.case.graph.importers import container_ref, get_importer, run_import
    from takedown.case.graph.importers.c2 import c2_summary

    get_importer(importer)
    handler = _handler()
    paths = list(files or [])
    if importer == "c2" and not paths:
        paths = [c2_summary(_home())]
        _note(f"summarised the lake's C2 look-ups into {paths[0]}")
    if not paths:
        raise GraphError(f"import {importer}: give at least one file")
    options: dict[str, Any] = {"provider": provider, "region": region}
    if from_:
        options["container"] = container_ref(from_)
    with _writing() as (store, door):
        for path in paths:
            report = run_import(
                store, door, importer, path, handler=handler, again=again, options=options
            )
            _note(report.summary())


@app.command("resolve")
def resolve_cmd(
    kind: Annotated[str, typer.Option(help="person, registrant, or all.")] = "all",
    threshold: Annotated[float, typer.Option(help="Least match probability to link.")] = 0.5,
) -> None:
    """Score which people (and registrant records) are the same; link them with same-as.

    Nothing is merged: each match is a same-as link with its probability as confidence,
    its match weight and the model version. The model card is added to the vault.
    """
    from takedown.case.graph.resolve import MODELS, resolve

    kinds = list(MODELS) if kind == "all" else [kind]
    handler = _handler()
    with _writing() as (store, door):
        for k in kinds:
            _note(resolve(store, door, handler=handler, kind=k, threshold=threshold).summary())


@app.command("link")
def link_cmd(
    src: Annotated[str, typer.Argument(help="KIND:VALUE of the source (e.g. person:…).")],
    kind: Annotated[str, typer.Argument(help="Link kind (see `graph kinds`).")],
    dst: Annotated[str, typer.Argument(help="KIND:VALUE of the target.")],
    evidence: Annotated[
        list[str], typer.Option("--evidence", "-e", help="SHA-256 of a vault item (repeat).")
    ],
    confidence: Annotated[str, typer.Option(help="0-100, or unknown.")] = "unknown",
    valid_from: Annotated[str | None, typer.Option("--valid-from", help="ISO date.")] = None,
    valid_to: Annotated[str | None, typer.Option("--valid-to", help="ISO date.")] = None,
    note: Annotated[str, typer.Option(help="Why (one line).")] = "",
    locator: Annotated[str, typer.Option(help="Where in the evidence item.")] = "",
) -> None:
    """Assert one link by hand, citing vault items (add them with `takedown evidence add`)."""
    from takedown.case.graph.importers import container_ref
    from takedown.case.graph.importers.base import parse_time
    from takedown.case.graph.model import LINK_KINDS, LinkSpec, check_confidence

    if kind not in LINK_KINDS:
        raise GraphError(f"link kind {kind!r}: choose one of {', '.join(LINK_KINDS)}")
    a, b = container_ref(src), container_ref(dst)
    handler = _handler()
    with _writing() as (store, door):
        shas = [door.info(e).sha256 for e in evidence]
        spec = LinkSpec(
            a[0],
            a[1],
            kind,
            b[0],
            b[1],
            check_confidence(confidence, "--confidence"),
            [(s, locator) for s in shas],
            parse_time(valid_from, "--valid-from"),
            parse_time(valid_to, "--valid-to"),
            note,
        )
        store.add_links([spec], door=door, asserted_by=handler, method="manual")
        _note(f"linked {a[0]}:{a[1]} {kind} {b[0]}:{b[1]} citing {len(shas)} item(s)")


@app.command("find")
def find_cmd(text: str, fmt: FormatOpt = Format.table) -> None:
    """Entities whose key or label contains TEXT."""
    with _store() as store:
        rows = [
            {"id": f"#{e.id}", "kind": e.kind, "key": e.key, "label": e.label}
            for e in store.search(text)
        ]
    _emit(rows, fmt, f"Entities matching {text!r}")


@app.command("show")
def show_cmd(entity: str, fmt: FormatOpt = Format.table) -> None:
    """Everything known about an entity: its attributes and every link, with evidence.

    ENTITY is KIND:VALUE (ip:203.0.113.7), #ID, or a key or label.
    """
    from takedown.case.graph.questions import show_rows

    with _store() as store:
        ent = store.resolve(entity)
        rows = show_rows(store, ent)
    if fmt is Format.table:
        _say(f"#{ent.id} {ent.display()}")
        for key, value in ent.attrs.items():
            if value not in (None, ""):
                _say(f"  {key}: {value}")
    _emit(rows, fmt, f"Links of #{ent.id} ({len(rows)})")


@app.command("timeline")
def timeline_cmd(
    entity: str,
    depth: Annotated[int, typer.Option(help="1: its own links; 2: also its neighbours'.")] = 1,
    fmt: FormatOpt = Format.table,
) -> None:
    """The entity's dated links, oldest first."""
    from takedown.case.graph.questions import timeline_rows

    with _store() as store:
        ent = store.resolve(entity)
        rows = timeline_rows(store, ent, depth)
    _emit(rows, fmt, f"Timeline of {ent.display()}")


@app.command("path")
def path_cmd(a: str, b: str, fmt: FormatOpt = Format.table) -> None:
    """The shortest and the strongest evidence paths between two entities."""
    from takedown.case.graph.adjacency import load_adjacency
    from takedown.case.graph.questions import paths, route_steps, step_rows

    with _store() as store:
        ea, eb = store.resolve(a), store.resolve(b)
        found = paths(store, load_adjacency(store), ea, eb)
        rows = []
        for name, route in found.items():
            if route is None:
                continue
            for row in step_rows(route_steps(store, route)):
                rows.append({"path": name, "strength": f"{route.probability:.1%}", **row})
    if not rows:
        raise GraphError(f"no path between {ea.display()} and {eb.display()}")
    _emit(rows, fmt, f"Paths {ea.display()} … {eb.display()}")


@app.command("explain")
def explain_cmd(
    a: str,
    b: str,
    shortest: Annotated[bool, typer.Option(help="Explain the shortest path instead.")] = False,
) -> None:
    """Each step from A to B with its evidence item and SHA-256, ready for an affidavit."""
    from takedown.case.graph.adjacency import load_adjacency
    from takedown.case.graph.questions import explain_text, paths

    with _store() as store:
        ea, eb = store.resolve(a), store.resolve(b)
        route = paths(store, load_adjacency(store), ea, eb)["shortest" if shortest else "strongest"]
        if route is None:
            raise GraphError(f"no path between {ea.display()} and {eb.display()}")
        which = "Shortest" if shortest else "Strongest"
        title = f"{which} evidence path (graph version {store.version})"
        sys.stdout.write(explain_text(store, route, title))


@app.command("candidates")
def candidates_cmd(
    seed: str,
    hops: Annotated[int, typer.Option(help="How far from SEED to look.")] = 6,
    limit: Annotated[int, typer.Option(help="At most this many candidates.")] = 10,
    fmt: FormatOpt = Format.table,
) -> None:
    """Candidate operators: persons near SEED ranked by independent corroborating evidence.

    Per person, paths sharing no entity are found one after another (each the strongest left);
    a path is an independent line of evidence when it cites no item an earlier one cites.
    Ranked by independent lines, then distinct evidence items, then the strongest path.
    """
    from takedown.case.graph.adjacency import load_adjacency
    from takedown.case.graph.questions import candidates

    with _store() as store:
        ent = store.resolve(seed)
        found = candidates(store, load_adjacency(store), ent, hops=hops, limit=limit)
    rows = [
        {
            "rank": i,
            "person": f"#{c.person.id} {c.person.label}",
            "records": ", ".join(f"#{m.id}" for m in c.members),
            "independent": c.independent,
            "paths": len(c.routes),
            "evidence_items": len(c.evidence),
            "strongest": f"{c.strongest:.1%}",
            "why": c.explanation(),
        }
        for i, c in enumerate(found, 1)
    ]
    _emit(rows, fmt, f"Candidate operators from {ent.display()}")


@app.command("export")
def export_cmd(
    kind: Annotated[str, typer.Argument(help="stix, misp, graphml or gexf.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    seed: Annotated[
        str | None, typer.Option(help="Only what lies within --hops of this entity.")
    ] = None,
    hops: Annotated[int, typer.Option(help="With --seed: how far.")] = 4,
) -> None:
    """Share the graph: a STIX 2.1 bundle (validated), a MISP event, or GraphML/GEXF (Gephi)."""
    from takedown.case.graph.share import export

    with _store() as store:
        n = export(store, kind, out, seed=store.resolve(seed) if seed else None, hops=hops)
    _note(f"wrote {out} ({n} objects)")


@app.command("picture")
def picture_cmd(
    a: str,
    b: str,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG or SVG file.")] = Path("path.png"),
) -> None:
    """Draw the evidence paths from A to B (strongest and shortest) with their evidence."""
    from takedown.case.graph.adjacency import load_adjacency
    from takedown.case.graph.picture import draw_routes
    from takedown.case.graph.questions import paths

    with _store() as store:
        ea, eb = store.resolve(a), store.resolve(b)
        both = paths(store, load_adjacency(store), ea, eb)
        found = [r for r in (both["strongest"], both["shortest"]) if r]
        if len(found) == 2 and found[0].nodes == found[1].nodes:
            found = found[:1]
        if not found:
            raise GraphError(f"no path between {ea.display()} and {eb.display()}")
        written = draw_routes(store, found, out, f"{ea.display()} … {eb.display()}")
    for path in written:
        _note(f"wrote {path}")


@app.command("status")
def status_cmd(fmt: FormatOpt = Format.table) -> None:
    """What the graph holds: counts by kind and every import with its summary."""
    with _store() as store:
        kinds = store.con.execute(
            "SELECT 'entity' AS what, kind, count(*) AS n FROM entities GROUP BY kind "
            "UNION ALL SELECT 'link', kind, count(*) FROM links GROUP BY kind ORDER BY 1, 3 DESC"
        ).fetchall()
        imports = store.con.execute(
            "SELECT id, importer, name, handler, imported_at, summary FROM imports ORDER BY id"
        ).fetchall()
        version = store.version
    _emit(
        [{"what": w, "kind": k, "count": n} for w, k, n in kinds], fmt, f"Graph version {version}"
    )
    if fmt is Format.table and imports:
        _emit(
            [
                {"import": i, "importer": imp, "file": name, "by": by, "at": at, "summary": s}
                for i, imp, name, by, at, s in imports
            ],
            fmt,
            "Imports",
        )


@app.command("kinds")
def kinds_cmd(fmt: FormatOpt = Format.table) -> None:
    """The entity and link kinds, with what each means."""
    from takedown.case.graph.model import ENTITY_KINDS, LINK_KINDS

    rows = [{"type": "entity", "kind": k, "meaning": v} for k, v in ENTITY_KINDS.items()]
    rows += [{"type": "link", "kind": k, "meaning": v} for k, v in LINK_KINDS.items()]
    _emit(rows, fmt, "Kinds")


@app.command("demo")
def demo_cmd() -> None:
    """Import the fictional demo case into HOME and show the path from C2 to the candidate."""
    from takedown import cli as _cli
    from takedown.case.graph.demo import demo_graph

    for path in demo_graph(_home(), _cli.out):
        _note(f"wrote {path}")
