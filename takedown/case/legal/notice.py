"""Notice of pleadings by publication: one language-neutral structure, three renderings.

:func:`build_notice` puts a case file and a language template together into a :class:`Notice`
(a list of blocks); :func:`print_pdf` lays it out for filing and mailing, :func:`ad_pdf` as a
boxed newspaper advertisement (a quarter page by default, the type shrunk until it fits), and
:func:`notice_text` as the plain text of an e-mail. The HTML site (``site.py``) walks the same
blocks, so every form says the same thing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from takedown.case.legal.casefile import CaseFile
from takedown.case.legal.pdfdoc import PAPER, CourtPDF
from takedown.case.legal.templates import LanguageTemplate
from takedown.errors import LegalError

__all__ = ["AD_SIZE", "Block", "Notice", "ad_pdf", "build_notice", "notice_text", "print_pdf"]

AD_SIZE = (148.0, 210.0)  # A5: a quarter of an A3 (tabloid) newspaper page


@dataclass(frozen=True, slots=True)
class Block:
    """``heading``, ``para``, ``small`` (counsel, languages) or ``party`` (a defendant)."""

    kind: str
    text: str
    items: tuple[tuple[str, str], ...] = ()


@dataclass
class Notice:
    lang: str
    template: LanguageTemplate
    title: str
    headline: str
    banner: str
    court: str
    caption: str
    number: str
    url: str
    blocks: list[Block] = field(default_factory=list)


def _defendants_label(case: CaseFile, tpl: LanguageTemplate) -> str:
    numbers = [d.number for d in case.defendants]
    if len(numbers) == 1:
        return tpl.text("defendant", n=numbers[0])
    if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return tpl.text("defendants_range", first=numbers[0], last=numbers[-1])
    return ", ".join(tpl.text("defendant", n=n) for n in numbers)


def build_notice(
    case: CaseFile, tpl: LanguageTemplate, others: Sequence[LanguageTemplate] = ()
) -> Notice:
    """The notice in ``tpl``'s language; ``others`` are named as the other languages."""
    lang = tpl.lang
    caption = case.caption[lang]
    notice = Notice(
        lang=lang,
        template=tpl,
        title=tpl.text("title"),
        headline=tpl.text("headline"),
        banner=tpl.text("fictional") if case.fictional else "",
        court=case.court[lang],
        caption=caption,
        number=tpl.text("case_number", number=case.number),
        url=case.pleadings_url,
    )
    add = notice.blocks.append
    add(Block("para", tpl.text("to", defendants=_defendants_label(case, tpl))))
    for defendant in case.defendants:
        items = tuple(
            (tpl.text(f"identifiers.{kind}"), "; ".join(values))
            for kind, values in defendant.identifiers().items()
        )
        add(Block("party", tpl.text("defendant", n=defendant.number), items))
    add(Block("para", tpl.text("intro", plaintiff=case.plaintiff[lang])))
    add(Block("heading", tpl.text("action_heading")))
    add(Block("para", case.summary[lang]))
    add(Block("heading", tpl.text("hearing_heading")))
    add(
        Block(
            "para",
            tpl.text(
                "hearing",
                date=tpl.date(case.hearing_date),
                time=case.hearing_time,
                timezone=case.hearing_timezone[lang],
                place=case.hearing_place[lang],
            ),
        )
    )
    if case.respond_by is not None:
        add(Block("para", tpl.text("respond", respond_by=tpl.date(case.respond_by))))
    else:
        add(Block("para", tpl.text("respond_no_date")))
    add(Block("heading", tpl.text("pleadings_heading")))
    add(Block("para", tpl.text("pleadings", url=case.pleadings_url)))
    if case.counsel:
        add(Block("small", tpl.text("counsel", counsel=case.counsel[lang])))
    if case.counsel_email:
        add(Block("small", tpl.text("counsel_email", email=case.counsel_email)))
    if others:
        names = ", ".join(o.name for o in others)
        add(Block("small", tpl.text("other_languages", languages=names)))
    return notice


def notice_text(notice: Notice) -> str:
    """The notice as plain text (the body of an e-mail)."""
    lines = []
    if notice.banner:
        lines += [f"*** {notice.banner} ***", ""]
    lines += [notice.court, f"{notice.caption} — {notice.number}", "", notice.title, ""]
    for block in notice.blocks:
        if block.kind == "heading":
            lines += ["", block.text.upper()]
        elif block.kind == "party":
            lines.append(f"  {block.text}:")
            lines += [f"    {label}: {values}" for label, values in block.items]
        else:
            lines += [block.text, ""] if block.kind == "para" else [block.text]
    return "\n".join(lines).rstrip() + "\n"


def _furniture(notice: Notice, generated: dt.datetime) -> list[str]:
    tpl = notice.template
    stamp = tpl.text("pdf.generated", date=tpl.date(generated.date()))
    return [
        *([notice.banner] if notice.banner else []),
        f"{notice.caption} — {notice.number} · {stamp}",
    ]


def _page_label(notice: Notice) -> str:
    return notice.template.text("pdf.page", page="{page}", pages="{pages}")


def _blocks(pdf: CourtPDF, notice: Notice, scale: float = 1.0) -> None:
    for block in notice.blocks:
        if block.kind == "heading":
            pdf.heading(block.text, size=11.5 * scale, space=2.5 * scale)
        elif block.kind == "para":
            pdf.para(block.text, size=10.5 * scale, align="L")
        elif block.kind == "small":
            pdf.para(block.text, size=9 * scale, align="L")
        elif block.kind == "party":
            size = 9.5 * scale
            pdf.set_x(pdf.l_margin + 4 * scale)
            pdf.set_font("serif", "B", size)
            pdf.cell(0, size * 0.48, block.text, new_x="LMARGIN", new_y="NEXT")
            for label, values in block.items:
                pdf.set_x(pdf.l_margin + 8 * scale)
                pdf.set_font("serif", "", size)
                pdf.multi_cell(
                    0,
                    size * 0.46,
                    f"{label}: {values}",
                    align="L",
                    new_x="LMARGIN",
                    new_y="NEXT",
                )
            pdf.ln(size * 0.15)


def print_pdf(
    notice: Notice, *, paper: tuple[float, float] = PAPER["letter"], generated: dt.datetime
) -> bytes:
    """The notice for filing, mailing and e-mail: caption, title, body, page numbers."""
    pdf = CourtPDF(
        size=paper,
        margin=22,
        running_head=f"{notice.caption} — {notice.number}",
        footer_lines=_furniture(notice, generated),
        page_label=_page_label(notice),
        generated=generated,
        title=notice.title,
        language=notice.lang,
    )
    pdf.add_page()
    pdf.set_font("serif", "B", 12)
    pdf.multi_cell(0, 6, notice.court.upper(), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("serif", "", 11)
    pdf.multi_cell(0, 5.5, notice.caption, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 5.5, notice.number, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    if notice.banner:
        pdf.banner(notice.banner)
    pdf.set_font("serif", "B", 14)
    pdf.multi_cell(0, 7, notice.title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _blocks(pdf, notice)
    return pdf.output_bytes()


_AD_MARGIN = 7.0  # the frame's distance from the paper's edge; the text sits 3 mm inside it


def _ad_pdf(notice: Notice, size: tuple[float, float], generated: dt.datetime) -> CourtPDF:
    pdf = CourtPDF(
        size=size,
        margin=_AD_MARGIN + 3,
        footer_lines=[],
        page_label="",
        generated=generated,
        title=f"{notice.headline}: {notice.title}",
        language=notice.lang,
    )
    pdf.set_auto_page_break(True, margin=_AD_MARGIN + 3)
    return pdf


def _ad_content(pdf: CourtPDF, notice: Notice, scale: float) -> None:
    pdf.set_font("sans", "B", 18 * scale)
    pdf.multi_cell(0, 8 * scale, notice.headline, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("serif", "B", 11 * scale)
    pdf.multi_cell(0, 5 * scale, notice.title, align="C", new_x="LMARGIN", new_y="NEXT")
    y = pdf.get_y() + 1.5 * scale
    pdf.line(pdf.l_margin, y, pdf.w - pdf.r_margin, y)
    pdf.set_y(y + 1.5 * scale)
    pdf.set_font("serif", "B", 9.5 * scale)
    pdf.multi_cell(0, 4.5 * scale, notice.court, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("serif", "", 9.5 * scale)
    pdf.multi_cell(
        0,
        4.5 * scale,
        f"{notice.caption} — {notice.number}",
        align="C",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(1.5 * scale)
    if notice.banner:
        pdf.banner(notice.banner, size=7.5 * scale)
    _blocks(pdf, notice, scale=0.85 * scale)


def _fit(notice: Notice, size: tuple[float, float], generated: dt.datetime, low: float) -> float:
    """The largest type scale (to 1%) at which the advertisement's text fits its frame.

    Trials are laid out on the endless pages of one scratch document, so the fonts are loaded
    once (each costs ~0.1 s), not once per trial.
    """
    scratch = _ad_pdf(notice, (size[0], 5000.0), generated)
    room = size[1] - 2 * (_AD_MARGIN + 3)

    def fits(scale: float) -> bool:
        scratch.add_page()
        top = scratch.get_y()
        _ad_content(scratch, notice, scale)
        return scratch.get_y() - top <= room

    if fits(1.0):
        return 1.0
    if not fits(low):
        return 0.0
    bad, good = 1.0, low
    while bad - good > 0.02:
        middle = (bad + good) / 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


def ad_pdf(
    notice: Notice,
    *,
    size: tuple[float, float] = AD_SIZE,
    generated: dt.datetime,
    min_scale: float = 0.5,
) -> bytes:
    """A boxed one-page advertisement; the type shrinks (to ``min_scale``) until it fits."""
    scale = _fit(notice, size, generated, min_scale)
    while scale >= min_scale - 1e-9:
        pdf = _ad_pdf(notice, size, generated)
        pdf.add_page()
        pdf.set_line_width(0.8)
        pdf.rect(_AD_MARGIN, _AD_MARGIN, size[0] - 2 * _AD_MARGIN, size[1] - 2 * _AD_MARGIN)
        pdf.set_line_width(0.2)
        _ad_content(pdf, notice, scale)
        if pdf.pages_count == 1:
            return pdf.output_bytes()
        scale -= 0.01  # a page break the measurement did not foresee (rare)
    raise LegalError(
        f"the {notice.lang} notice does not fit a {size[0]:.0f}x{size[1]:.0f} mm advertisement "
        "even in small type: give a larger --ad-size or shorten the case file's texts"
    )
