"""Notices: the words come from the language templates; the PDFs carry them exactly."""

import datetime as dt
import re
import subprocess

import pytest

from takedown.case.legal.casefile import EXAMPLE_CASE, load_case
from takedown.case.legal.notice import ad_pdf, build_notice, notice_text, print_pdf
from takedown.case.legal.pdfdoc import PAPER
from takedown.case.legal.templates import BUILTIN_TEMPLATES, available_languages, load_template
from takedown.errors import LegalError

GENERATED = dt.datetime(2011, 3, 20, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def case():
    return load_case(EXAMPLE_CASE)


@pytest.fixture(scope="module")
def notices(case):
    tpls = {lang: load_template(lang) for lang in case.languages}
    return {
        lang: build_notice(case, t, [o for o in tpls.values() if o is not t])
        for lang, t in tpls.items()
    }


def pdf_text(data, tmp_path, name="doc.pdf"):
    path = tmp_path / name
    path.write_bytes(data)
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True
    )
    return " ".join(out.stdout.decode("utf-8").split()), path


def norm(text):
    return " ".join(text.split())


RUSSIAN = [
    "УВЕДОМЛЕНИЕ О ПОДАЧЕ ИСКА И О СУДЕБНОМ ЗАСЕДАНИИ",
    "«Экзампл Банк» против ответчиков «Джон Доу» 1–11",
    "Дело № 2:11-cv-00042-XMPL",
    "ВЫМЫШЛЕННОЕ ДЕЛО ДЛЯ ДЕМОНСТРАЦИИ — все имена, номера, адреса и счета в этом документе "
    "вымышлены.",
    "Ответчикам «Джон Доу» 1–11, известным под перечисленными ниже идентификаторами:",
    "адреса электронной почты: cosmo.demo@mail.example; c.demo@inbox.example",
    "платёжные счета: ExamplePay EP-0000-0001",
    "Истец — «Экзампл Банк» — подал против вас исковое заявление в указанный выше суд.",
    "Судебное заседание состоится 18 апреля 2011 г. в 10:00 (по тихоокеанскому времени) по "
    "адресу: зал судебных заседаний № 14, Федеральное здание суда, 700 Example Avenue, "
    "Экзамплтон, Экзампленд.",
    "Ответ на исковое заявление необходимо представить до 8 апреля 2011 г. включительно.",
    "Исковое заявление, определения суда и другие материалы дела можно бесплатно прочитать и "
    "загрузить по адресу: https://pleadings.example/example-bank-v-does/",
    "Страница 1 из 2",
]


def test_russian_print_notice_has_the_exact_cyrillic_text(notices, tmp_path):
    text, path = pdf_text(print_pdf(notices["ru"], generated=GENERATED), tmp_path, "ru.pdf")
    for sentence in RUSSIAN:
        assert norm(sentence) in text, sentence
    for block in notices["ru"].blocks:  # every paragraph, word for word
        if block.kind in ("para", "small", "heading"):
            assert norm(block.text) in text, block.text
    fonts = subprocess.run(
        ["pdffonts", str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    assert fonts and all(re.search(r"\byes\s+yes\s+yes\b", line) for line in fonts)  # emb sub uni
    assert all("DejaVu" in line for line in fonts)


def test_english_notice_and_reproducibility(notices, tmp_path):
    data = print_pdf(notices["en"], generated=GENERATED, paper=PAPER["a4"])
    assert data == print_pdf(notices["en"], generated=GENERATED, paper=PAPER["a4"])
    text, _ = pdf_text(data, tmp_path)
    assert (
        "A hearing will be held on April 18, 2011 at 10:00 (Pacific Time) at: Courtroom 14" in text
    )
    assert "You must answer the complaint by April 8, 2011." in text
    assert "John Doe 11 other identifiers: XMPP demo11@chat.example" in text
    assert "This notice is also published in: Русский" in text
    assert "Generated March 20, 2011" in text


def test_ad_is_one_boxed_quarter_page(notices, tmp_path):
    for lang in ("en", "ru"):
        text, path = pdf_text(ad_pdf(notices[lang], generated=GENERATED), tmp_path, f"{lang}.pdf")
        info = subprocess.run(
            ["pdfinfo", str(path)], capture_output=True, text=True, check=True
        ).stdout
        assert re.search(r"Pages:\s+1\n", info)
        assert "419.53 x 595.28 pts" in info  # 148 x 210 mm
        assert notices[lang].headline in text and norm(notices[lang].title) in text
        assert notices[lang].banner in text
    with pytest.raises(LegalError, match="does not fit a 60x60 mm advertisement"):
        ad_pdf(notices["ru"], size=(60.0, 60.0), generated=GENERATED)


def test_email_text(notices):
    text = notice_text(notices["ru"])
    assert text.startswith("*** ВЫМЫШЛЕННОЕ ДЕЛО")
    assert "\n  Джон Доу 3:\n    адреса электронной почты: alias3@post.example\n" in text
    assert "\n    платёжные счета: ExamplePay EP-0000-0003; Example Card ending 0003\n" in text


def test_a_new_language_is_a_file_away(case, tmp_path):
    folder = tmp_path / "templates" / "xx"
    folder.mkdir(parents=True)
    english = (BUILTIN_TEMPLATES / "en" / "notice.toml").read_text()
    (folder / "notice.toml").write_text(
        english.replace("NOTICE OF LAWSUIT AND HEARING", "XX NOTICE").replace(
            'language = "English"', 'language = "Xx"'
        )
    )
    assert "xx" in available_languages([tmp_path / "templates"])
    tpl = load_template("xx", [tmp_path / "templates"])
    assert tpl.text("title") == "XX NOTICE" and tpl.name == "Xx"
    with pytest.raises(LegalError, match="no text for language 'xx'"):
        build_notice(case, tpl)  # the case file has no xx texts yet
    (folder / "notice.toml").write_text(english.replace('title = "NOTICE', 'titel = "NOTICE'))
    with pytest.raises(LegalError, match=r"xx/notice.toml: missing key 'title'"):
        load_template("xx", [tmp_path / "templates"])
    (folder / "notice.toml").write_text(english.replace("$plaintiff", "$claimant"))
    tpl = load_template("xx", [tmp_path / "templates"])
    with pytest.raises(LegalError, match=r"intro: unknown placeholder \$claimant"):
        tpl.text("intro", plaintiff="P")
    with pytest.raises(LegalError, match="no template for language 'zz'"):
        load_template("zz")
