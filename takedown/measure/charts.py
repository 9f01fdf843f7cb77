"""Charts a person would put in a report: PNG and SVG, drawn offline with matplotlib (Agg)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = ["population_chart", "save", "top_networks_chart"]

_INK = "#1f2933"
_MACHINES = "#1f77b4"
_IPS = "#d62728"
_TRUTH = "#2ca02c"


def _thousands(x: float, _pos: int) -> str:
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:.0f}"


def _num(day: dt.date) -> float:
    """Matplotlib's date number (days since its default epoch, 1970-01-01)."""
    return float((day - dt.date(1970, 1, 1)).days)


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name``.png and ``name``.svg; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def population_chart(
    days: Sequence[dt.date],
    machines: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    ips: Sequence[float],
    *,
    takedown: dt.date | None = None,
    truth: Sequence[float] | None = None,
    title: str = "Infected machines, estimated, and unique IPs",
) -> Figure:
    """Daily estimated machines with their interval, unique IPs, the takedown marked."""
    fig, ax = plt.subplots(figsize=(10, 4.8))
    x = [_num(d) for d in days]
    ax.fill_between(
        x, low, high, color=_MACHINES, alpha=0.18, linewidth=0, label="machines, 90% interval"
    )
    ax.plot(x, machines, color=_MACHINES, linewidth=2, label="machines (estimated)")
    ax.plot(x, ips, color=_IPS, linewidth=1.5, linestyle="--", label="unique IPs (naive count)")
    if truth is not None:
        ax.plot(
            x,
            truth,
            color=_TRUTH,
            linewidth=1.2,
            linestyle=":",
            label="machines (simulator ground truth)",
        )
    if takedown is not None:
        when = _num(takedown)
        ax.axvline(when, color=_INK, linewidth=1.2)
        ax.annotate(
            "takedown",
            xy=(when, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -14),
            textcoords="offset points",
            color=_INK,
            fontsize=9,
        )
    ax.set_title(title, loc="left", fontsize=12, color=_INK)
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))  # type: ignore[no-untyped-call]
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=9, loc="lower left")
    fig.autofmt_xdate()
    return fig


def top_networks_chart(
    labels: Sequence[str], machines: Sequence[float], ips: Sequence[float], title: str
) -> Figure:
    """Horizontal bars: estimated machines and unique IPs for the top networks."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(10, 0.42 * n + 1.4))
    ys = list(range(n))[::-1]
    ax.barh(
        [y + 0.2 for y in ys], machines, height=0.4, color=_MACHINES, label="machines (estimated)"
    )
    ax.barh([y - 0.2 for y in ys], ips, height=0.4, color=_IPS, alpha=0.7, label="unique IPs")
    ax.set_yticks(ys, labels, fontsize=8)
    ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.set_title(title, loc="left", fontsize=12, color=_INK)
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=9, loc="lower right")
    return fig
