"""The pleadings web site: static HTML, every language, every document with its SHA-256.

Plain files, no scripts, no fonts or styles from elsewhere (a Content-Security-Policy says so to
the browser), so it can be served by any web server or opened from disk, and the hashes let a
defendant, or the court, check that what they downloaded is what was filed. Layout::

    index.html            every language's title and link, and the document list
    <lang>/index.html     the notice in that language, the documents, the other languages
    documents/<file>      the documents themselves
    SHA256SUMS            ``sha256sum -c SHA256SUMS`` checks a download
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from takedown.case.legal.notice import Notice
from takedown.case.legal.pdfdoc import sha256_file

__all__ = ["SiteDocument", "SitePage", "build_site"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'"
_STYLE = """
body{font-family:Georgia,"DejaVu Serif",serif;max-width:52rem;margin:2rem auto;padding:0 1rem;
line-height:1.45;color:#111}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.6rem}
.banner{border:2px solid #000;background:#eee;padding:.5rem;font-weight:bold;text-align:center}
.court{text-align:center;font-weight:bold;text-transform:uppercase}.caption{text-align:center}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #999;padding:.3rem .4rem;text-align:left;vertical-align:top}
td.hash{font-family:"DejaVu Sans Mono",monospace;font-size:.75rem;word-break:break-all}
nav{margin:1rem 0}nav a{margin-right:1rem}.party{margin:.2rem 0 .4rem 1rem}
.party ul{margin:.1rem 0}.small{font-size:.9rem}
"""


@dataclass(frozen=True, slots=True)
class SiteDocument:
    """A file to publish, with its title in each language."""

    path: Path
    titles: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SitePage:
    name: str  # path relative to the site root
    sha256: str
    size: int


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _safe_name(name: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "document"
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        base, dot, ext = stem.rpartition(".")
        candidate = f"{base}-{n}.{ext}" if dot and base else f"{stem}-{n}"
    taken.add(candidate)
    return candidate


def _head(lang: str, title: str) -> str:
    return (
        f'<!doctype html>\n<html lang="{_e(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
    )


def _documents_table(
    notice: Notice, docs: Sequence[tuple[str, SiteDocument, SitePage]], prefix: str
) -> str:
    tpl = notice.template
    rows = [
        f'<tr><td><a href="{_e(prefix + page.name)}">'
        f"{_e(doc.titles.get(notice.lang) or next(iter(doc.titles.values())))}</a>"
        f"<br><small>{_e(name)}</small></td>"
        f'<td>{page.size:,}</td><td class="hash">{page.sha256}</td></tr>'
        for name, doc, page in docs
    ]
    return (
        f'<table class="documents" lang="{_e(notice.lang)}">\n<thead><tr>'
        f"<th>{_e(tpl.text('site.document'))}</th><th>{_e(tpl.text('site.size'))}</th>"
        f"<th>{_e(tpl.text('site.sha256'))}</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>\n"
        + f'<p class="small">{_e(tpl.text("site.verify"))} '
        f'(<a href="{_e(prefix)}SHA256SUMS">SHA256SUMS</a>)</p>\n'
    )


def _notice_html(notice: Notice) -> str:
    parts = []
    if notice.banner:
        parts.append(f'<p class="banner">{_e(notice.banner)}</p>')
    parts += [
        f'<p class="court">{_e(notice.court)}</p>',
        f'<p class="caption">{_e(notice.caption)}<br>{_e(notice.number)}</p>',
        f"<h1>{_e(notice.title)}</h1>",
    ]
    for block in notice.blocks:
        if block.kind == "heading":
            parts.append(f"<h2>{_e(block.text)}</h2>")
        elif block.kind == "party":
            items = "".join(f"<li>{_e(label)}: {_e(values)}</li>" for label, values in block.items)
            parts.append(
                f'<div class="party"><strong>{_e(block.text)}</strong><ul>{items}</ul></div>'
            )
        else:
            text = _e(block.text).replace(
                _e(notice.url), f'<a href="{_e(notice.url)}">{_e(notice.url)}</a>'
            )
            parts.append(f'<p class="{block.kind}">{text}</p>')
    return "\n".join(parts) + "\n"


def build_site(
    notices: Mapping[str, Notice], documents: Sequence[SiteDocument], out: Path
) -> list[SitePage]:
    """Write the site into ``out`` (replaced whole); the pages and documents with their hashes."""
    if not notices:
        raise ValueError("build_site needs at least one notice")
    tmp = out.with_name(f".{out.name}.building")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "documents").mkdir(parents=True)
    taken: set[str] = set()
    docs: list[tuple[str, SiteDocument, SitePage]] = []
    for doc in documents:
        name = _safe_name(doc.path.name, taken)
        target = tmp / "documents" / name
        shutil.copyfile(doc.path, target)
        page = SitePage(f"documents/{name}", sha256_file(target), target.stat().st_size)
        docs.append((name, doc, page))
    (tmp / "SHA256SUMS").write_text(
        "".join(f"{page.sha256}  {page.name}\n" for _, _, page in docs), encoding="utf-8"
    )
    langs = list(notices)
    for lang, notice in notices.items():
        tpl = notice.template
        others = " ".join(
            f'<a href="../{_e(o)}/index.html" hreflang="{_e(o)}" lang="{_e(o)}">'
            f"{_e(notices[o].template.name)}</a>"
            for o in langs
            if o != lang
        )
        body = (
            _head(lang, tpl.text("site.title", caption=notice.caption))
            + (f"<nav>{_e(tpl.text('site.languages'))}: {others}</nav>\n" if others else "")
            + _notice_html(notice)
            + f"<h2>{_e(tpl.text('site.documents'))}</h2>\n"
            + _documents_table(notice, docs, "../")
            + "</body>\n</html>\n"
        )
        (tmp / lang).mkdir()
        (tmp / lang / "index.html").write_text(body, encoding="utf-8")
    first = notices[langs[0]]
    sections = []
    for lang, notice in notices.items():
        tpl = notice.template
        sections.append(
            f'<section lang="{_e(lang)}">\n'
            + (f'<p class="banner">{_e(notice.banner)}</p>\n' if notice.banner else "")
            + f"<h1>{_e(tpl.text('site.title', caption=notice.caption))}</h1>\n"
            f'<p class="court">{_e(notice.court)}</p>\n'
            f'<p class="caption">{_e(notice.number)}</p>\n'
            f'<p><a href="{_e(lang)}/index.html" hreflang="{_e(lang)}">'
            f"{_e(notice.title)}</a> ({_e(tpl.name)})</p>\n"
            f"<h2>{_e(tpl.text('site.documents'))}</h2>\n"
            + _documents_table(notice, docs, "")
            + "</section>\n"
        )
    title = " / ".join(n.template.text("site.title", caption=n.caption) for n in notices.values())
    index = _head(first.lang, title) + "<hr>\n".join(sections) + "</body>\n</html>\n"
    (tmp / "index.html").write_text(index, encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    pages = [SitePage(p.name, p.sha256, p.size) for _, _, p in docs]
    for rel in ["index.html", *[f"{lang}/index.html" for lang in langs], "SHA256SUMS"]:
        path = out / rel
        pages.append(SitePage(rel, sha256_file(path), path.stat().st_size))
    return pages
