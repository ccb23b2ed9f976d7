"""Translations and localisation: translation files, language choice, catalogues, rendering per language.

The CLDR plural categories asserted here are those of the Unicode CLDR plural rules
(https://www.unicode.org/cldr/charts/latest/supplemental/language_plural_rules.html):
Arabic has zero, one, two, few (3–10), many (11–99) and other (100–102, …).
"""

from __future__ import annotations

import datetime as dt
import email
import re
import shutil
from email import policy
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.content.library import load_library
from newsletter.content.selection import papers_for
from newsletter.content.translations import best_language, original_hash
from newsletter.errors import ProblemsError
from newsletter.mail import locale
from newsletter.mail.build import build_message
from newsletter.mail.checks import check_issue
from newsletter.mail.render import render_issue
from tests.support.project import GOOD, REPO, TEMPLATES, copy_newsletter, run, translate

ISSUE = "2024-01-10-first"


# ---------------------------------------------------------------------------
# Choosing a language


@pytest.mark.parametrize(
    ("wanted", "available", "default", "expected"),
    [
        ("de", ["en", "de", "ar"], "en", "de"),
        ("pt-BR", ["en", "pt"], "en", "pt"),
        ("pt-BR", ["en", "pt-BR", "pt"], "en", "pt-BR"),
        ("pt", ["en", "pt-BR"], "en", "en"),  # a more specific translation does not serve the base
        ("ar-EG", ["en", "ar"], "en", "ar"),
        ("AR-eg", ["en", "ar"], "en", "ar"),  # tags compare case-insensitively
        ("de-CH", ["en", "DE"], "en", "DE"),  # and the available spelling is returned
        ("zh-Hant", ["en", "zh-Hans", "zh"], "en", "en"),  # never another script, nor the bare language
        ("zh-Hant-TW", ["en", "zh-Hant"], "en", "zh-Hant"),
        ("zh-Hans-CN", ["zh-Hans", "zh-Hant"], "en", "zh-Hans"),
        ("sr-Latn", ["sr", "sr-Cyrl"], "en", "en"),
        ("de-DE-x-formal", ["de-DE", "de"], "en", "de-DE"),  # a singleton goes with its subtag
        ("fr", ["en", "de"], "en", "en"),
        (None, ["en", "de"], "en", "en"),
        ("", ["en", "de"], "de", "de"),
    ],
)
def test_best_language(wanted, available, default, expected) -> None:
    assert best_language(wanted, available, default) == expected


# ---------------------------------------------------------------------------
# A newsletter with translations


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def digest(tmp_path) -> Path:
    root = copy_newsletter(GOOD, tmp_path / "digest")
    translate(
        root,
        ISSUE,
        "de",
        'subject: "Erste Ausgabe: Sprachmodelle"\ntitle: "Die erste Ausgabe"\n',
        "Willkommen! Drei **Artikel** diese Woche.\n",
    )
    translate(
        root,
        ISSUE,
        "ar",
        'subject: "العدد الأول"\npreheader: "ثلاث أوراق هذا الأسبوع"\n',
        "أهلًا بكم في العدد الأول.\n",
    )
    write(
        root / "papers" / "2401.00001.de.md",
        '---\ntitle: "Ein übersetzter Titel"\n---\nEine übersetzte Zusammenfassung.\n',
    )
    return root


def library_of(root: Path):
    return load_library(load_settings(root))


def test_translations_are_not_issues_and_share_the_original(digest) -> None:
    library = library_of(digest)
    assert [i.slug for i in library.issues] == ["2024-01-10-first", "2024-01-17-arabic"]
    original = library.issue(ISSUE)
    assert library.translations.languages_of(original) == ["en", "ar", "de"]
    german = library.translations.issue_in(original, "de")
    assert (german.subject, german.title, german.language) == (
        "Erste Ausgabe: Sprachmodelle",
        "Die erste Ausgabe",
        "de",
    )
    assert german.intro == "Willkommen! Drei **Artikel** diese Woche."
    # not set by the translation: the original's
    assert german.preheader == original.preheader
    assert (german.number, german.date, german.status, german.include, german.slug) == (
        original.number,
        original.date,
        original.status,
        original.include,
        original.slug,
    )
    arabic = library.translations.issue_in(original, "ar")
    assert arabic.title == original.title and arabic.preheader == "ثلاث أوراق هذا الأسبوع"


def test_a_paper_translation_sets_only_its_words(digest) -> None:
    library = library_of(digest)
    paper = library.papers["2401.00001"]
    german, language = library.translations.paper_in(paper, "de")
    assert (german.title, german.abstract, language) == (
        "Ein übersetzter Titel",
        "Eine übersetzte Zusammenfassung.",
        "de",
    )
    assert (german.authors, german.arxiv, german.upvotes) == (paper.authors, paper.arxiv, paper.upvotes)
    assert library.translations.paper_in(paper, "ar") == (paper, None)


def test_a_dotted_paper_id_is_not_a_translation(tmp_path) -> None:
    root = copy_newsletter(GOOD, tmp_path / "digest")
    paper = (root / "papers" / "2401.00001.md").read_text(encoding="utf-8")
    # papers/2401.md does not exist, so papers/2401.00001.md stays a paper whatever its suffix
    assert "2401.00001" in library_of(root).papers
    write(root / "papers" / "2401.md", paper.replace("id: 2401.00001", "id: '2401'"))
    assert "2401.00001" in library_of(root).papers  # "00001" is no language tag


def test_unknown_field_in_a_translation_is_an_error_with_a_hint(digest) -> None:
    path = digest / "issues" / f"{ISSUE}.de.md"
    write(path, path.read_text(encoding="utf-8").replace("title:", "titel:"))
    write(digest / "issues" / f"{ISSUE}.ar.md", "---\nnumber: 7\n---\nنص\n")
    with pytest.raises(ProblemsError) as raised:
        library_of(digest)
    problems = {(p.where, p.field): p for p in raised.value.problems}
    assert problems[(f"issues/{ISSUE}.de.md", "titel")].hint == "Did you mean 'title'?"
    number = problems[(f"issues/{ISSUE}.ar.md", "number")]
    assert "unknown field in a translation" in number.message and "from the original" in number.hint


def test_a_translation_of_a_changed_original_is_flagged(digest) -> None:
    original = digest / "issues" / f"{ISSUE}.md"
    before = original_hash(original)
    write(original, original.read_text(encoding="utf-8") + "\nOne more paragraph.\n")
    library = library_of(digest)  # a warning, not an error
    report = check_issue(library, library.issue(ISSUE), spamassassin=False)
    stale = [w for w in report.warnings if "translated_from" in w]
    assert len(stale) == 2
    assert any(
        f"issues/{ISSUE}.de.md: translated_from: expected {original_hash(original)}" in w for w in stale
    )
    assert all(f"got {before}" in w for w in stale)


def test_check_builds_every_translation_and_compares_links(digest) -> None:
    library = library_of(digest)
    report = check_issue(library, library.issue(ISSUE), spamassassin=False)
    assert not report.errors, report.errors
    assert "de: translation builds" in " ".join(report.passed)
    assert "ar: translated from the original as it is now" in report.passed
    path = digest / "issues" / f"{ISSUE}.de.md"
    write(path, path.read_text(encoding="utf-8") + "\nSiehe [hier](https://elsewhere.example.net/x).\n")
    library = library_of(digest)
    report = check_issue(library, library.issue(ISSUE), spamassassin=False)
    assert any(
        "links: expected the original's" in w and "elsewhere.example.net" in w for w in report.warnings
    )


# ---------------------------------------------------------------------------
# Rendering in a language


def parsed(built) -> email.message.EmailMessage:
    return email.message_from_bytes(built.preview, policy=policy.default)


def test_render_in_german(digest) -> None:
    library = library_of(digest)
    built = build_message(library, library.issue(ISSUE), language="de-AT")
    message = parsed(built)
    assert message["Subject"] == "Erste Ausgabe: Sprachmodelle"
    assert message["Content-Language"] == "de"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert re.search(r'<html[^>]* lang="de"', html) and 'dir="ltr"' in html
    assert "Hallo Ada Lovelace," in text
    assert "Ausgabe 1 · 10. Januar 2024" in text  # CLDR German month name, the catalogue's pattern
    assert "In dieser Ausgabe" in text and "Im Browser ansehen" in html
    assert "Ein übersetzter Titel" in html  # the paper's translation, marked as German
    assert re.search(r'<div[^>]* id="2401.00001" lang="de" dir="ltr"', html)
    assert re.search(r'<div[^>]* id="arabic-dialects" lang="en" dir="ltr"', html)
    papers = len(built.rendered.papers)
    assert f"{papers} Artikel" in html


def test_render_in_arabic_is_right_to_left_with_arabic_plurals(digest) -> None:
    library = library_of(digest)
    built = build_message(library, library.issue(ISSUE), language="ar-EG")
    message = parsed(built)
    assert message["Subject"] == "العدد الأول"
    assert message["Content-Language"] == "ar"
    html = message.get_body(("html",)).get_content()
    assert re.search(r'<html[^>]* lang="ar"', html) and re.search(r'<html[^>]* dir="rtl"', html)
    text = message.get_body(("plain",)).get_content()
    assert "مرحبًا Ada Lovelace،" in text
    assert "10 يناير 2024" in text
    assert built.rendered.preheader == "ثلاث أوراق هذا الأسبوع"
    # untranslated papers keep their own words
    assert library.papers["2401.00001"].title in text
    assert re.search(r'<div[^>]* id="2401.00001" lang="en" dir="ltr" style="[^"]*text-align:left', html)


@pytest.mark.parametrize("wanted", ["fr", "pt-BR", None, "en-GB"])
def test_other_readers_get_the_original(digest, wanted) -> None:
    library = library_of(digest)
    issue = library.issue(ISSUE)
    rendered = render_issue(library, issue, papers_for(library, issue), language=wanted)
    assert (rendered.subject, rendered.language) == (issue.subject, "en")


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "لا توجد أوراق"),
        (1, "ورقة واحدة"),
        (2, "ورقتان"),
        (3, "3 أوراق"),
        (10, "10 أوراق"),
        (11, "11 ورقة"),
        (99, "99 ورقة"),
        (100, "100 ورقة"),
        (103, "103 أوراق"),
    ],
)
def test_arabic_has_six_plural_forms(count, expected) -> None:
    assert locale.chrome(TEMPLATES, "ar").papers(count) == expected


@pytest.mark.parametrize(
    ("language", "count", "expected"),
    [
        ("en", 1, "1 paper"),
        ("en", 1234, "1,234 papers"),
        ("de", 1234, "1.234 Artikel"),
        ("zh", 2, "2 篇论文"),
    ],
)
def test_plurals_and_numbers(language, count, expected) -> None:
    assert locale.chrome(TEMPLATES, language).papers(count) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "17 March 2026"), ("de", "17. März 2026"), ("de-CH", "17. März 2026"), ("zh", "2026年3月17日")],
)
def test_dates(language, expected) -> None:
    assert locale.chrome(TEMPLATES, language).date(dt.date(2026, 3, 17)) == expected


# ---------------------------------------------------------------------------
# Catalogues


def test_shipped_catalogues_are_complete_and_current(tmp_path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    shipped = (templates / "locale" / "messages.pot").read_text(encoding="utf-8")
    locale.extract(templates)
    fresh = (templates / "locale" / "messages.pot").read_text(encoding="utf-8")
    header = re.compile(r'^"POT-Creation-Date: .*$', re.MULTILINE)
    assert header.sub("", fresh) == header.sub("", shipped), "run `newsletter i18n extract` and commit"
    assert locale.languages(templates) == ["ar", "de", "en", "zh"]
    assert locale.check(templates, ["en", "ar", "de", "zh", "de-AT"]) == []


def test_check_names_missing_untranslated_and_fuzzy_strings(tmp_path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    po = locale.catalogue_path(templates, "de")
    text = po.read_text(encoding="utf-8")
    text = text.replace('msgstr "Abbestellen"', 'msgstr ""')
    text = text.replace('msgid "In this issue"', '#, fuzzy\nmsgid "In this issue"')
    po.write_text(text, encoding="utf-8")
    problems = locale.check(templates, ["de", "fr"])
    assert problems == [
        "templates/locale/de/LC_MESSAGES/messages.po: 'Unsubscribe': not translated",
        "templates/locale/de/LC_MESSAGES/messages.po: 'In this issue': marked fuzzy "
        "(review it, then drop the flag)",
        "templates/locale/fr/LC_MESSAGES/messages.po: expected a catalogue for 'fr', found none "
        "(run `newsletter i18n init fr`)",
    ]
    # neither shows in German: the English msgid does
    words = locale.chrome(templates, "de").strings()
    assert (words["unsubscribe"], words["in_this_issue"]) == ("Unsubscribe", "In this issue")


def test_catalogue_round_trip_through_the_cli(tmp_path) -> None:
    """extract → init → translate → update → compile → render, as an editor would."""
    root = copy_newsletter(GOOD, tmp_path / "digest", copy_templates=True)
    templates = root / "templates"
    # a new string in a template, marked for translation
    mjml = templates / "email" / "issue.mjml.j2"
    mjml.write_text(
        mjml.read_text(encoding="utf-8").replace(
            "{{ s.in_this_issue }}", '{{ s.in_this_issue }} — {{ _("Fresh from the press") }}'
        ),
        encoding="utf-8",
    )
    assert run(root, "i18n", "extract").exit_code == 0
    assert 'msgid "Fresh from the press"' in (templates / "locale" / "messages.pot").read_text("utf-8")
    result = run(root, "i18n", "init", "fr")
    assert result.exit_code == 0, result.output
    assert run(root, "i18n", "init", "fr").exit_code == 1  # never overwrites a translator's work
    assert run(root, "i18n", "update").exit_code == 0
    result = run(root, "i18n", "check", "--language", "fr")
    assert result.exit_code == 1
    assert "'Fresh from the press': not translated" in result.output
    translated = {"fr": "Tout frais", "de": "Frisch aus der Presse", "ar": "طازج", "zh": "新鲜出炉"}
    for language in ("fr", "de", "ar", "zh", "en"):
        po = locale.catalogue_path(templates, language)
        text = po.read_text(encoding="utf-8")
        words = translated.get(language, "Fresh from the press")
        text = re.sub(r'(msgid "Fresh from the press"\n)msgstr ""', rf'\1msgstr "{words}"', text)
        if language == "fr":  # every other string as its msgid, as a lazy translator would
            text = re.sub(r'msgid "(.+)"\nmsgstr ""', r'msgid "\1"\nmsgstr "\1"', text)
            text = re.sub(r'msgstr\[(\d)\] ""', r'msgstr[\1] "{count} articles"', text)
        po.write_text(text, encoding="utf-8")
    result = run(root, "i18n", "check", "--language", "fr")
    assert result.exit_code == 0, result.output
    result = run(root, "i18n", "compile")
    assert result.exit_code == 0 and (templates / "locale" / "fr" / "LC_MESSAGES" / "messages.mo").is_file()
    library = library_of(root)
    issue = library.issue(ISSUE)
    write(root / "issues" / f"{ISSUE}.de.md", "---\nsubject: Erste\n---\n")
    library = library_of(root)
    german = build_message(library, issue, language="de").rendered.html
    assert "In dieser Ausgabe — Frisch aus der Presse" in german
    english = build_message(library, issue).rendered.html
    assert "In this issue — Fresh from the press" in english


def test_the_example_newsletter_ships_arabic_and_german_issue_one() -> None:
    library = load_library(load_settings(REPO))
    issue = next(i for i in library.issues if i.number == 1)
    assert library.translations.languages_of(issue) == [issue.language, "ar", "de"]
    for language in ("ar", "de"):
        translation = library.translations.issues[(issue.slug, language)]
        assert translation.translated_from == original_hash(issue.path)
        built = build_message(library, issue, language=language)
        assert built.rendered.language == language and built.rendered.subject != issue.subject
        assert "45" in built.rendered.text


def test_a_broken_catalogue_is_a_clean_error(tmp_path, monkeypatch) -> None:
    root = copy_newsletter(GOOD, tmp_path / "digest", copy_templates=True)
    po = locale.catalogue_path(root / "templates", "ar")
    po.write_text(po.read_text(encoding="utf-8").replace('msgid "Hi,"', 'msgid: "Hi,"'), encoding="utf-8")
    result = run(root, "build", "2024-01-17-arabic", "--out", str(tmp_path / "out"), monkeypatch=monkeypatch)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "templates/locale/ar/LC_MESSAGES/messages.po: not a valid gettext catalogue" in result.output


def test_check_refuses_a_placeholder_the_original_lacks(tmp_path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    po = locale.catalogue_path(templates, "de")
    po.write_text(
        po.read_text(encoding="utf-8").replace('"Ausgabe {number}"', '"Ausgabe {nummer}"'), encoding="utf-8"
    )
    assert locale.check(templates, ["de-AT"]) == [
        "templates/locale/de/LC_MESSAGES/messages.po: 'Issue {number}': expected only the placeholders "
        "of the original, got {nummer}"
    ]
