"""The pleadings site: files and hashes on disk, then in a real browser (Chromium) on loopback."""

import datetime as dt
import functools
import hashlib
import http.server
import os
import re
import shutil
import threading
from urllib.parse import urlsplit

import pytest

from takedown.case.legal.casefile import EXAMPLE_CASE, load_case
from takedown.case.legal.notice import build_notice, print_pdf
from takedown.case.legal.site import SiteDocument, build_site
from takedown.case.legal.templates import load_template

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    case = load_case(EXAMPLE_CASE)
    tpls = {lang: load_template(lang) for lang in case.languages}
    notices = {
        lang: build_notice(case, t, [o for o in tpls.values() if o is not t])
        for lang, t in tpls.items()
    }
    docs = []
    for lang, notice in notices.items():
        path = root / f"notice-{lang}.pdf"
        path.write_bytes(print_pdf(notice, generated=dt.datetime(2011, 3, 20, tzinfo=dt.UTC)))
        docs.append(SiteDocument(path, {o: f"Notice {lang}" for o in notices}))
    odd = root / "Appendix A <script>.txt"
    odd.write_text("a file whose name needs care\n")
    docs.append(SiteDocument(odd, {"en": "Appendix <A> & more", "ru": "Приложение «А»"}))
    docs += [
        SiteDocument(d.path, {lang: d.title[lang] for lang in notices}) for d in case.documents
    ]
    out = root / "site"
    pages = build_site(notices, docs, out)
    return out, pages, notices


def test_files_hashes_and_escaping(site):
    out, pages, _ = site
    names = sorted(p.name for p in pages)
    assert names == sorted(
        [
            "documents/notice-en.pdf",
            "documents/notice-ru.pdf",
            "documents/Appendix-A-script-.txt",
            "documents/complaint-FICTIONAL.txt",
            "index.html",
            "en/index.html",
            "ru/index.html",
            "SHA256SUMS",
        ]
    )
    sums = (out / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 4
    for line in sums:
        digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    index = (out / "index.html").read_text()
    assert "<script" not in index.lower() and "Appendix &lt;A&gt; &amp; more" in index
    assert "Content-Security-Policy" in index and "default-src 'none'" in index
    assert not re.search(r"(src|href)=\"(https?:)?//", index)  # nothing from elsewhere
    ru = (out / "ru" / "index.html").read_text()
    assert '<html lang="ru">' in ru and "Судебное заседание состоится 18 апреля 2011 г." in ru
    assert 'href="../en/index.html"' in ru and "ВЫМЫШЛЕННОЕ ДЕЛО" in ru


def test_rebuild_replaces_the_site_whole(site, tmp_path):
    out, _, notices = site
    copy = tmp_path / "site"
    shutil.copytree(out, copy)
    (copy / "documents" / "stale.pdf").write_text("old")
    build_site(notices, [], copy)
    assert not (copy / "documents" / "stale.pdf").exists()
    assert (copy / "SHA256SUMS").read_text() == ""


@pytest.fixture(scope="module")
def server(site):
    out = site[0]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")
def test_in_a_real_browser(site, server):
    from playwright.sync_api import sync_playwright

    _out, pages, _ = site
    hashes = {p.name: p.sha256 for p in pages if p.name.startswith("documents/")}
    outside, errors, requests = [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            context = browser.new_context()

            def guard(route):
                requests.append(route.request.url)
                if urlsplit(route.request.url).hostname != "127.0.0.1":
                    outside.append(route.request.url)
                    route.abort()
                else:
                    route.continue_()

            context.route("**/*", guard)
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            response = page.goto(server + "/index.html")
            assert response is not None and response.status == 200
            assert page.locator('section[lang="en"]').count() == 1
            assert page.locator('section[lang="ru"]').count() == 1
            assert page.locator('a[href="en/index.html"]').count() == 1
            assert page.locator('a[href="ru/index.html"]').count() == 1
            shown = page.locator('section[lang="en"] td.hash').all_inner_texts()
            assert sorted(shown) == sorted(hashes.values())
            page.locator('a[href="ru/index.html"]').click()
            page.wait_for_url("**/ru/index.html")
            assert page.locator("html").get_attribute("lang") == "ru"
            assert "УВЕДОМЛЕНИЕ О ПОДАЧЕ ИСКА" in page.locator("h1").inner_text()
            rows = page.locator("table.documents tbody tr")
            assert rows.count() == len(hashes)
            for i in range(rows.count()):
                href = rows.nth(i).locator("a").get_attribute("href")
                digest = rows.nth(i).locator("td.hash").inner_text()
                name = href.removeprefix("../")
                assert hashes[name] == digest
                body = page.request.get(f"{server}/{name}").body()
                assert hashlib.sha256(body).hexdigest() == digest
            page.locator('nav a[hreflang="en"]').click()
            page.wait_for_url("**/en/index.html")
            assert "NOTICE OF LAWSUIT AND HEARING" in page.locator("h1").inner_text()
        finally:
            browser.close()
    assert outside == [] and errors == []
    assert requests and all(u.startswith(server) for u in requests)
