"""The PDF groundwork of every court document: fonts, page furniture, tables, hashing.

Fonts are the DejaVu TrueType files matplotlib ships (full Latin, Greek and Cyrillic), embedded
as subsets, so every glyph prints and ``pdftotext`` gives the exact text back; no system font
package is needed. Output is reproducible: the creation date is the document's generation
date, and the same inputs give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import TableCellFillMode
from fpdf.fonts import FontFace

from takedown.errors import LegalError

__all__ = [
    "PAPER",
    "CourtPDF",
    "font_dir",
    "parse_size",
    "sha256_bytes",
    "sha256_file",
    "table",
    "write_atomic",
]

# fontTools reports every subsetting step at INFO: noise in a CLI whose default level is INFO.
logging.getLogger("fontTools").setLevel(logging.WARNING)

PAPER = {"a4": (210.0, 297.0), "letter": (215.9, 279.4), "legal": (215.9, 355.6)}
_FAMILIES = {
    "serif": ("DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic"),
    "sans": ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique"),
    "mono": ("DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique"),
}


@cache
def font_dir() -> Path:
    """matplotlib's bundled TrueType folder (DejaVu Sans, Serif and Mono)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    if not (folder / "DejaVuSerif.ttf").is_file():
        raise LegalError(f"{folder}: DejaVu fonts not found (is matplotlib installed whole?)")
    return folder


def parse_size(text: str, what: str) -> tuple[float, float]:
    """``a4``/``letter``/``legal`` or ``WIDTHxHEIGHT`` in millimetres."""
    key = text.strip().lower()
    if key in PAPER:
        return PAPER[key]
    width, sep, height = key.partition("x")
    try:
        size = (float(width), float(height))
    except ValueError:
        size = (0.0, 0.0)
    if not sep or not (50 <= size[0] <= 1000 and 50 <= size[1] <= 1500):
        raise LegalError(
            f"{what} {text!r}: give a4, letter, legal or WIDTHxHEIGHT in millimetres "
            "(e.g. 148x210), each side 50-1000 mm"
        )
    return size


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class CourtPDF(FPDF):
    """A page with a running head (after page 1), a footer of small lines, ``Page N of M``."""

    def __init__(
        self,
        *,
        size: tuple[float, float] = PAPER["letter"],
        margin: float = 20.0,
        running_head: str = "",
        footer_lines: Sequence[str] = (),
        page_label: str = "Page {page} of {pages}",
        generated: dt.datetime | None = None,
        title: str = "",
        language: str = "en",
    ) -> None:
        super().__init__(unit="mm", format=size)
        self.running_head = running_head
        self.footer_lines = list(footer_lines)
        self.page_label = page_label
        self._loaded: set[tuple[str, str]] = set()
        self.set_margins(margin, margin, margin)
        footer_room = 6 + 3.5 * len(self.footer_lines)
        self.set_auto_page_break(True, margin=max(margin, footer_room + 8))
        when = generated or dt.datetime.now(dt.UTC)
        self.set_creation_date(when)
        self.set_creator("takedown")
        self.set_producer("takedown (fpdf2)")
        self.set_lang(language)
        if title:
            self.set_title(title)
        self.alias_nb_pages("{nb}")

    def set_font(self, family: str | None = None, style: Any = "", size: float = 0) -> None:
        """As FPDF's, loading a DejaVu face on first use (parsing one costs ~0.1 s)."""
        # fpdf itself re-sets the current font (style as an enum) on a new page: loaded already.
        if isinstance(style, str) and family in _FAMILIES and (family, style) not in self._loaded:
            regular, bold, italic = _FAMILIES[family]
            name = {"": regular, "B": bold, "I": italic}.get(style)
            if name is None:
                raise ValueError(f"font style {style!r}: use '', 'B' or 'I'")
            self.add_font(family, style, font_dir() / f"{name}.ttf")
            self._loaded.add((family, style))
        super().set_font(family, style, size)

    def header(self) -> None:
        if self.page_no() > 1 and self.running_head:
            self.set_font("sans", "", 7.5)
            self.set_text_color(90)
            self.cell(0, 4, self.running_head, align="R", new_x="LMARGIN", new_y="NEXT")
            self.set_text_color(0)
            self.ln(3)

    def footer(self) -> None:
        lines = [*self.footer_lines, self.page_label.format(page=self.page_no(), pages="{nb}")]
        self.set_y(-(6 + 3.5 * len(lines)))
        self.set_font("sans", "", 6.5)
        self.set_text_color(90)
        for line in lines:
            self.cell(0, 3.5, line, align="C", new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0)

    # -- text helpers --------------------------------------------------------------------------
    def heading(self, text: str, size: float = 12.0, space: float = 3.0) -> None:
        self.ln(space)
        self.set_font("serif", "B", size)
        self.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def para(self, text: str, size: float = 10.5, style: str = "", align: str = "J") -> None:
        self.set_font("serif", style, size)
        self.multi_cell(0, size * 0.48, text, align=align, new_x="LMARGIN", new_y="NEXT")
        self.ln(size * 0.2)

    def banner(self, text: str, size: float = 9.0) -> None:
        """A boxed, shaded line of warning (used for the fictional-case label)."""
        self.set_font("sans", "B", size)
        self.set_fill_color(235)
        self.set_draw_color(0)
        self.multi_cell(
            0, size * 0.55, text, border=1, align="C", fill=True, new_x="LMARGIN", new_y="NEXT"
        )
        self.ln(2)

    def output_bytes(self) -> bytes:
        return bytes(self.output())


def table(
    pdf: CourtPDF,
    headings: Sequence[str],
    rows: Sequence[Sequence[Any]],
    widths: Sequence[float],
    *,
    size: float = 8.0,
    caption: str = "",
) -> None:
    """A numbered-caption table whose heading repeats on every page it spans."""
    if caption:
        pdf.ln(2)
        pdf.set_font("serif", "B", size + 1.5)
        pdf.multi_cell(0, (size + 1.5) * 0.5, caption, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
    pdf.set_font("sans", "B", size)  # loads the bold face the headings use
    pdf.set_font("sans", "", size)
    pdf.set_draw_color(120)
    with pdf.table(
        col_widths=tuple(widths),
        headings_style=FontFace(emphasis="BOLD", fill_color=(225, 225, 225)),
        line_height=size * 0.5,
        repeat_headings=1,
        cell_fill_color=(246, 246, 246),
        cell_fill_mode=TableCellFillMode.ROWS,
        text_align="LEFT",
    ) as tab:
        head = tab.row()
        for text in headings:
            head.cell(text)
        for values in rows:
            row = tab.row()
            for value in values:
                row.cell("" if value is None else str(value))
    pdf.ln(2)
