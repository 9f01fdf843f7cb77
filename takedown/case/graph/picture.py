"""A picture of evidence paths: entities in columns, each link with its kind, confidence and the
evidence item it cites. PNG and SVG via matplotlib (no display needed)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from takedown.case.graph.adjacency import Route
from takedown.case.graph.store import GraphStore

__all__ = ["draw_routes"]

_COLOURS = {
    "botnet": "#d62728",
    "sample": "#e377c2",
    "domain": "#ff7f0e",
    "ip": "#ffbb78",
    "server": "#bcbd22",
    "hosting-account": "#2ca02c",
    "payment": "#17becf",
    "card": "#17becf",
    "email": "#9467bd",
    "phone": "#c5b0d5",
    "alias": "#8c564b",
    "registrant": "#c49c94",
    "person": "#1f77b4",
    "organisation": "#7f7f7f",
    "network": "#dbdb8d",
}


def draw_routes(store: GraphStore, routes: Sequence[Route], out: Path, title: str) -> list[Path]:
    """Draw the routes (the first along the middle) to ``out`` (.png, .svg or .pdf)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    width = max(len(r.nodes) for r in routes)
    pos: dict[int, tuple[float, float]] = {}
    for i, route in enumerate(routes):
        y = 0.0 if i == 0 else (1.6 * ((i + 1) // 2) * (1 if i % 2 else -1))
        span = max(len(route.nodes) - 1, 1)
        for j, node in enumerate(route.nodes):
            if node not in pos:
                pos[node] = (j * (width - 1) / span, y)
    ents = store.entities(list(pos))
    fig = Figure(figsize=(2.6 * width + 1, 2.2 + 1.6 * len(routes)))
    ax = fig.add_subplot()
    drawn: set[tuple[int, int]] = set()
    for i, route in enumerate(routes):
        links = {lk["id"]: lk for lk in store.links(route.links)}
        for (u, v), lid in zip(
            zip(route.nodes, route.nodes[1:], strict=False), route.links, strict=True
        ):
            if (u, v) in drawn or (v, u) in drawn:
                continue
            drawn.add((u, v))
            (x1, y1), (x2, y2) = pos[u], pos[v]
            ax.annotate(
                "",
                xy=(x2, y2),
                xytext=(x1, y1),
                arrowprops={
                    "arrowstyle": "-",
                    "lw": 2.2 if i == 0 else 1.2,
                    "color": "#333333" if i == 0 else "#999999",
                },
            )
            lk = links.get(lid)
            if lk is None:
                continue
            conf = "?" if lk["confidence"] is None else str(lk["confidence"])
            items = ", ".join(sorted({e["name"] for e in lk["evidence"]}))
            arrow = "→" if lk["src"] == u else "←"
            label = f"{arrow} {lk['kind']} ({conf})\n" + textwrap.shorten(items, 34)
            ax.text(
                (x1 + x2) / 2,
                (y1 + y2) / 2 + 0.28,
                label,
                ha="center",
                va="bottom",
                fontsize=7,
                color="#222222",
            )
    for node, (x, y) in pos.items():
        ent = ents[node]
        label = ent.label if len(ent.label) <= 44 else ent.label[:42] + "…"
        name = textwrap.fill(label, 18, break_long_words=True, max_lines=3, placeholder="…")
        ax.text(
            x,
            y,
            f"{ent.kind}\n{name}",
            ha="center",
            va="center",
            fontsize=7.5,
            bbox={
                "boxstyle": "round,pad=0.4",
                "fc": _COLOURS.get(ent.kind, "#dddddd"),
                "ec": "#333333",
                "alpha": 0.9,
            },
        )
    ys = [y for _, y in pos.values()]
    ax.set_xlim(-0.8, max(width - 1, 1) + 0.8)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.2)
    ax.axis("off")
    strengths = ", ".join(f"{r.probability:.0%}" for r in routes)
    ax.set_title(f"{title}\npath strength (product of confidences): {strengths}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return [out]
