"""The email's and the archive's own words per language: gettext catalogues, CLDR dates and numbers.

Owns the chrome strings (`CHROME`, declared once here, in English, as the msgids),
the catalogues under `templates/locale/<lang>/LC_MESSAGES/messages.po`, and the
catalogue workflow (extract → init → update → compile → check) that `newsletter i18n`
runs. Catalogues are compiled from the `.po` files in memory when first used, so no
binary `.mo` file needs committing; `compile` writes them for other gettext tools. A
caller that builds often (the archive) passes a folder under `paths.build` where each
compiled catalogue is kept, named after the digest of its `.po` file and Babel's version.

Plurals follow each catalogue's CLDR rule (Arabic has six forms); dates and numbers
are formatted by Babel from CLDR data. A missing translation falls back to the base
language (`pt-BR` → `pt`), then to the English msgid.
"""

from __future__ import annotations

import datetime as dt
import gettext
import hashlib
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from newsletter.atomic_files import replace_file
from newsletter.errors import RenderError

LOCALE_DIR = "locale"
DOMAIN = "messages"
TEMPLATE_GLOBS = ("email/*.j2", "site/*.j2")
# Babel's keywords: N_ marks a msgid, NP_ a singular/plural pair (the CLDR rule picks the form).
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "NP_": (1, 2)}
TRANSLATOR_COMMENT = "Translators:"


def N_(message: str) -> str:  # the gettext convention: `extract` finds it
    return message


def NP_(singular: str, plural: str) -> tuple[str, str]:
    return singular, plural


# The chrome strings: key -> English msgid. Placeholders in braces stay as they are.
CHROME: dict[str, str] = {
    "issue_number": N_("Issue {number}"),
    "view_in_browser": N_("View in browser"),
    "unsubscribe": N_("Unsubscribe"),
    "unsubscribe_line": N_("Unsubscribe with one click: {url}"),
    "preferences": N_("Language and name"),
    "preferences_line": N_("Change your language or name: {url}"),
    "read_more": N_("Read more →"),
    "greeting": N_("Hi {name},"),
    "greeting_anonymous": N_("Hi,"),
    "in_this_issue": N_("In this issue"),
    "reason": N_("You receive this email because you subscribed to {newsletter} at {site}."),
    "code": N_("Code"),
    "pdf": N_("PDF"),
    "project": N_("Project page"),
    "upvotes": N_("upvotes"),
    "archive": N_("Archive"),
    "subscribe": N_("Subscribe"),
    "subscribe_prompt": N_("Get the next issue in your inbox."),
    "email_label": N_("Email address"),
    "all_issues": N_("All issues"),
    "tagged": N_("Papers tagged"),
    "not_found": N_("This page does not exist."),
    # Translators: a CLDR date pattern (d = day, MMMM = month name, y = year), e.g. "d. MMMM y".
    "date_pattern": N_("d MMMM y"),
    "skip_to_content": N_("Skip to content"),
    "site_navigation": N_("Site"),
    "issue_navigation": N_("More issues"),
    "tags": N_("Tags"),
    "all_tags": N_("All tags"),
    "feed": N_("Feed"),
    "previous_issue": N_("Previous issue"),
    "next_issue": N_("Next issue"),
    "featured_in": N_("Featured in"),
    "name_label": N_("Name (optional)"),
    "honeypot_label": N_("Leave this field empty"),
    "published_on": N_("Published"),
    "arxiv": N_("arXiv"),
    "editor_note": N_("Editor's note"),
    "paper_page": N_("Paper page"),
    "home": N_("Home"),
    "no_issues": N_("No issues yet."),
    # Translators: before the list of languages a page can also be read in ("Read in: English · Deutsch").
    "read_in": N_("Read in:"),
}
PAPER_COUNT = NP_("{count} paper", "{count} papers")
PLURAL_SAMPLES = (0, 1, 2, 3, 11, 100, 101)  # zero, one, two, few, many, other in CLDR's rules


# ---------------------------------------------------------------------------
# Loading


def catalogue_path(templates_dir: Path, language: str) -> Path:
    return templates_dir / LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def translations(templates_dir: Path, language: str, kept_in: Path | None = None) -> gettext.NullTranslations:
    """The catalogue for `language`, falling back to its base language's, then to the msgids.

    `kept_in`: a folder where compiled catalogues are kept between processes.
    """
    chain = [language] + ([language.split("-")[0]] if "-" in language else [])
    found: gettext.NullTranslations = gettext.NullTranslations()
    for tag in reversed(chain):
        path = catalogue_path(templates_dir, tag)
        if path.is_file():
            if kept_in is None:
                catalogue = gettext.GNUTranslations(io.BytesIO(_compiled(path, path.stat().st_mtime_ns)))
            else:
                catalogue = _kept_catalogue(path, kept_in)
            catalogue.add_fallback(found)
            found = catalogue
    return found


COMPILED_VERSION = 1  # bump when `_compiled` compiles differently


def _kept_catalogue(path: Path, folder: Path) -> gettext.GNUTranslations:
    """A catalogue compiled once and kept in `folder`, named after its source and the compiler.

    Parsing a `.po` file with Babel costs about 0.1 s per process; the kept `.mo` opens
    in a millisecond. Its first line is the SHA-256 of the rest: a file cut short or
    edited by hand is compiled again, never used.
    """
    import babel

    source = path.read_bytes()
    name = hashlib.sha256(
        b"\0".join((str(COMPILED_VERSION).encode(), babel.__version__.encode(), source))
    ).hexdigest()[:32]
    kept = folder / f"{name}.mo"
    try:
        stored = kept.read_bytes()
        check, _, compiled = stored.partition(b"\n")
        if check.decode("ascii") == hashlib.sha256(compiled).hexdigest():
            return gettext.GNUTranslations(io.BytesIO(compiled))
    except (OSError, ValueError, UnicodeDecodeError):
        pass  # missing or damaged: compile it again
    compiled = _compiled(path, path.stat().st_mtime_ns)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        replace_file(kept, hashlib.sha256(compiled).hexdigest().encode() + b"\n" + compiled)
    except OSError:
        pass  # a read-only checkout compiles each time, as without the folder
    return gettext.GNUTranslations(io.BytesIO(compiled))


@lru_cache(maxsize=32)
def _compiled(path: Path, mtime_ns: int) -> bytes:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import PoFileError, read_po

    try:
        with path.open("rb") as handle:
            catalogue = read_po(handle, abort_invalid=True)
    except (PoFileError, ValueError) as exc:
        raise RenderError(f"{_short(path)}: not a valid gettext catalogue: {exc}") from None
    out = io.BytesIO()
    write_mo(out, catalogue, use_fuzzy=False)  # a fuzzy entry is a guess: the English shows instead
    return out.getvalue()


@lru_cache(maxsize=64)
def babel_locale(language: str):
    """The Babel locale for a BCP 47 tag: the tag, else its base language, else English."""
    from babel import Locale, UnknownLocaleError

    for tag in (language, language.split("-")[0], "en"):
        try:
            return Locale.parse(tag, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    raise AssertionError("Babel always knows English")


@dataclass(frozen=True)
class Chrome:
    """The chrome of one language: its strings, plurals, dates and numbers."""

    language: str
    catalogue: gettext.NullTranslations
    locale: Any = field(repr=False)
    where: str = ""  # the catalogue file, for errors

    def strings(self) -> dict[str, Any]:
        """Every chrome string by key (what templates see as `strings`), plus `_language`.

        A translation whose placeholders `str.format` cannot fill (`{nom}` for `{name}`,
        a lone brace) is an error naming the catalogue and the string, never a traceback
        from deep inside a template.
        """
        words: dict[str, Any] = {}
        for key, msgid in CHROME.items():
            words[key] = self._checked(msgid, self.catalogue.gettext(msgid))
        for count in PLURAL_SAMPLES:  # one count of each CLDR category any language has
            self._checked(PAPER_COUNT[1], self.catalogue.ngettext(*PAPER_COUNT, count))
        words["_language"] = self.language
        return words

    def _checked(self, msgid: str, text: str) -> str:
        expected = {name.strip("{}"): "" for name in _placeholders(msgid)}
        try:
            text.format(**expected)
        except (KeyError, IndexError, ValueError) as exc:
            got = ", ".join(sorted(_placeholders(text) - _placeholders(msgid))) or f"{text!r} ({exc})"
            raise RenderError(
                f"{self.where or self.language}: {msgid!r}: expected only the placeholders "
                f"{', '.join(sorted(_placeholders(msgid))) or '(none)'}, got {got}\n\n"
                "Placeholders stay as in the English msgid; fix the msgstr, then run "
                "`newsletter i18n check`."
            ) from None
        return text

    def papers(self, count: int) -> str:
        """'1 paper', '45 papers' — in the form the language's CLDR plural rule picks for `count`."""
        return self.catalogue.ngettext(*PAPER_COUNT, count).format(count=self.number(count))

    def number(self, value: int | float) -> str:
        from babel.numbers import format_decimal

        return format_decimal(value, locale=self.locale)

    def date(self, value: dt.date) -> str:
        return cldr_date(value, self.catalogue.gettext(CHROME["date_pattern"]), self.language)


@lru_cache(maxsize=16384)
def cldr_date(value: dt.date, pattern: str, language: str) -> str:
    """`value` in `pattern` with the CLDR names of `language` (Babel).

    Remembered: an archive of thousands of issues shows the same dates on many pages,
    and Babel takes longer to format one than Jinja takes to render the line around it.
    """
    from babel.dates import format_date

    return format_date(value, format=pattern, locale=babel_locale(language))


def chrome(templates_dir: Path, language: str, kept_in: Path | None = None) -> Chrome:
    """The chrome of `language`; `kept_in` as for `translations`."""
    where = _short(catalogue_path(templates_dir, _with_catalogue(templates_dir, language)))
    return Chrome(language, translations(templates_dir, language, kept_in), babel_locale(language), where)


# ---------------------------------------------------------------------------
# The catalogue workflow


def template_path(templates_dir: Path) -> Path:
    return templates_dir / LOCALE_DIR / f"{DOMAIN}.pot"


def extract(templates_dir: Path, project: str = "newsletter") -> Path:
    """Write `locale/messages.pot`: the chrome strings declared here and every `_()` in the templates."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract as extract_from
    from babel.messages.pofile import write_po
    from jinja2.ext import babel_extract

    catalogue = Catalog(project=project, fuzzy=False)
    sources: list[tuple[str, Path, Callable | str]] = [
        ("newsletter/mail/locale.py", Path(__file__), "python")
    ]
    for pattern in TEMPLATE_GLOBS:
        for path in sorted(templates_dir.glob(pattern)):
            sources.append((str(path.relative_to(templates_dir)), path, babel_extract))
    for shown, path, method in sources:
        with path.open("rb") as handle:
            for lineno, message, comments, context in extract_from(
                method,
                handle,
                keywords=KEYWORDS,
                comment_tags=(TRANSLATOR_COMMENT,),
                options={"extensions": "jinja2.ext.i18n"} if method is babel_extract else {},
            ):
                catalogue.add(message, None, [(shown, lineno)], auto_comments=comments, context=context)
    out = template_path(templates_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out, lambda handle: write_po(handle, catalogue, width=100, include_lineno=False))
    return out


def init(templates_dir: Path, language: str) -> Path:
    """Start `locale/<language>/LC_MESSAGES/messages.po` from the template; refuse to overwrite."""
    from babel.messages.pofile import write_po

    path = catalogue_path(templates_dir, language)
    if path.exists():
        raise RenderError(f"{_short(path)}: already exists (run `newsletter i18n update` instead)")
    template = _read_template(templates_dir)
    template.locale = babel_locale(language)
    template.fuzzy = False
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, lambda handle: write_po(handle, template, width=100, include_lineno=False))
    return path


def languages(templates_dir: Path) -> list[str]:
    """The languages that have a catalogue."""
    root = templates_dir / LOCALE_DIR
    return sorted(p.parent.parent.name for p in root.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def update(templates_dir: Path) -> list[Path]:
    """Merge the template into every catalogue: new strings empty, changed ones marked fuzzy."""
    from babel.messages.pofile import read_po, write_po

    template = _read_template(templates_dir)
    written = []
    for language in languages(templates_dir):
        path = catalogue_path(templates_dir, language)
        with path.open("rb") as handle:
            catalogue = read_po(handle)
        catalogue.update(template)
        _write(
            path,
            lambda handle, c=catalogue: write_po(
                handle, c, width=100, ignore_obsolete=True, include_lineno=False
            ),
        )
        written.append(path)
    return written


def compile_all(templates_dir: Path) -> list[Path]:
    """Write `messages.mo` next to each catalogue (the renderer itself compiles in memory)."""
    written = []
    for language in languages(templates_dir):
        path = catalogue_path(templates_dir, language)
        target = path.with_suffix(".mo")
        target.write_bytes(_compiled(path, path.stat().st_mtime_ns))
        written.append(target)
    return written


def check(templates_dir: Path, wanted: Iterable[str]) -> list[str]:
    """What is wrong with the catalogues of the `wanted` languages: missing, untranslated, fuzzy, stale."""
    from babel.messages.pofile import read_po

    template = _read_template(templates_dir)
    problems = []
    for language in sorted({_with_catalogue(templates_dir, tag) for tag in wanted}):
        path = catalogue_path(templates_dir, language)
        if language.split("-")[0] == "en" and not path.is_file():
            continue  # the msgids are English
        if not path.is_file():
            problems.append(
                f"{_short(path)}: expected a catalogue for {language!r}, found none "
                f"(run `newsletter i18n init {language}`)"
            )
            continue
        with path.open("rb") as handle:
            catalogue = read_po(handle)
        for message in template:
            if not message.id:
                continue
            entry = catalogue.get(message.id, context=message.context)
            label = message.id if isinstance(message.id, str) else message.id[0]
            if entry is None:
                problems.append(f"{_short(path)}: {label!r}: missing (run `newsletter i18n update`)")
            elif "fuzzy" in entry.flags:
                problems.append(f"{_short(path)}: {label!r}: marked fuzzy (review it, then drop the flag)")
            elif not entry.string or (isinstance(entry.string, tuple | list) and not all(entry.string)):
                problems.append(f"{_short(path)}: {label!r}: not translated")
            elif extra := _placeholders(entry.string) - _placeholders(message.id):
                problems.append(
                    f"{_short(path)}: {label!r}: expected only the placeholders of the original, "
                    f"got {', '.join(sorted(extra))}"
                )
    return problems


def _with_catalogue(templates_dir: Path, language: str) -> str:
    # de-AT is served by the de catalogue (see `translations`): check that one
    base = language.split("-")[0]
    if (
        not catalogue_path(templates_dir, language).is_file()
        and catalogue_path(templates_dir, base).is_file()
    ):
        return base
    return language


PLACEHOLDER = re.compile(r"{([^{}]*)}")


def _placeholders(text: str | tuple[str, ...] | list[str]) -> set[str]:
    # an unknown {name} in a translation would fail `str.format` while rendering
    texts = [text] if isinstance(text, str) else list(text)
    return {"{" + name + "}" for t in texts for name in PLACEHOLDER.findall(t)}


def _read_template(templates_dir: Path):
    from babel.messages.pofile import read_po

    path = template_path(templates_dir)
    if not path.is_file():
        raise RenderError(f"{_short(path)}: no catalogue template (run `newsletter i18n extract` first)")
    with path.open("rb") as handle:
        return read_po(handle)


def _write(path: Path, write: Callable[[Any], None]) -> None:
    from newsletter.atomic_files import replace_file

    buffer = io.BytesIO()
    write(buffer)
    replace_file(path, buffer.getvalue())


def _short(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[parts.index("templates") :]) if "templates" in parts else str(path)
