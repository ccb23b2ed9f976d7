"""Rendering: Jinja2 → MJML → mjml-python → premailer, plus a real plain-text part.

Each stage is one function. An issue is rendered once (per language); what differs
per reader — the greeting and the unsubscribe link — is left as markers (`Markers`)
that survive every stage, so a send personalises by substitution, never by re-rendering.
No content can produce a marker: see `newsletter.mail.markers.Markers` for why.
"""

from __future__ import annotations

import html
import logging
import re
import textwrap
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from markupsafe import Markup

from newsletter.config import Settings, text_direction
from newsletter.content.library import Issue, Library, Paper
from newsletter.errors import RenderError
from newsletter.mail.locale import chrome, cldr_date, translations
from newsletter.mail.markers import (
    GREETING,
    PREFERENCES_URL,
    UNSUBSCRIBE_URL,
    Markers,
    choose_nonce,
    expect_markers,
    marker,
    placed_markers,
)
from newsletter.mail.tracking import mark_untracked, paper_link_attributes, untracked_attributes
from newsletter.text import CONTROL_CHARS

EXCERPT_CHARS = 300
TEXT_WIDTH = 78
EMAIL_TEMPLATE = "email/issue.mjml.j2"
TEXT_TEMPLATE = "email/issue.txt.j2"


@dataclass(frozen=True)
class Rendered:
    """One issue rendered for one language: what every recipient's message is made from."""

    issue: Issue
    papers: tuple[Paper, ...]
    subject: str
    preheader: str
    html: str
    text: str
    language: str
    direction: str
    strings: dict[str, Any]
    markers: Markers

    def greeting(self, name: str | None) -> str:
        """The greeting line for one reader, in the issue's language (plain text)."""
        name = (name or "").strip()
        return self.strings["greeting"].format(name=name) if name else self.strings["greeting_anonymous"]


# ---------------------------------------------------------------------------
# Markdown → safe HTML


class Markdown:
    """CommonMark without raw HTML, sanitised again with nh3 (imported text is untrusted)."""

    TAGS = {"p", "a", "em", "strong", "code", "pre", "ul", "ol", "li", "blockquote", "br", "sub", "sup"}

    @cached_property
    def _parser(self):
        from markdown_it import MarkdownIt

        # "commonmark" with html disabled: <script> in an abstract becomes visible text
        return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})

    @cached_property
    def _cleaner(self):
        import nh3

        return nh3.Cleaner(
            tags=self.TAGS,
            attributes={"a": {"href"}},
            url_schemes={"http", "https", "mailto"},
            attribute_filter=_absolute_links_only,
            # no rel: links never open in a new browsing context here, and nh3 would also put
            # rel on an <a> whose relative href it dropped (invalid HTML5)
            link_rel=None,
            strip_comments=True,
        )

    def html(self, text: str) -> Markup:
        return Markup(self._cleaner.clean(self._parser.render(text)).strip())

    def plain(self, text: str) -> str:
        """The visible text of markdown, whitespace collapsed (for excerpts)."""
        return _visible(self._parser.render(text))

    def text_with_links(self, text: str) -> str:
        """Markdown as the plain-text part shows it: the visible text, each link as `text (URL)`.

        A link whose text is its URL (`<https://…>`) is shown once; a relative link, which
        the HTML part drops too, keeps only its text.
        """
        return _visible(_LINK.sub(_link_as_text, self._parser.render(text)))


_BLOCK_TAG = re.compile(r"</?(p|li|ul|ol|br|h[1-6]|blockquote|pre|hr)\b[^>]*>", re.IGNORECASE)
# markdown-it writes every link this way (raw HTML is off, so content cannot write its own)
_LINK = re.compile(r'<a href="([^"]*)"(?: title="[^"]*")?>(.*?)</a>', re.DOTALL)


def _visible(rendered: str) -> str:
    rendered = re.sub(r"<[^>]+>", "", _BLOCK_TAG.sub(" ", rendered))
    return " ".join(html.unescape(rendered).split())


def _link_as_text(match: re.Match[str]) -> str:
    # both groups are still HTML-escaped here; _visible unescapes them once
    url, label = match.group(1), match.group(2)
    if _absolute_links_only("a", "href", url) is None or url in (label, f"mailto:{label}"):
        return label
    return f"{label} ({url})"


def _absolute_links_only(tag: str, attr: str, value: str) -> str | None:
    # Relative links mean nothing in a mail client; drop the href, keep the text.
    if attr == "href" and not re.match(r"^(https?://|mailto:)", value, re.IGNORECASE):
        return None
    return value


MARKDOWN = Markdown()


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> tuple[str, bool]:
    """About `limit` characters of plain text, cut at a sentence or word boundary.

    Returns (excerpt, truncated).
    """
    plain = MARKDOWN.plain(text)
    if len(plain) <= limit:
        return plain, False
    window = plain[: limit + 1]
    # Prefer the last sentence end in the second half of the window.
    # Latin sentences end before a space; Chinese and Japanese ones need none after '。'.
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)|[。！？]", window)]
    ends = [e for e in ends if e >= limit // 2]
    if ends:
        return window[: ends[-1]], True
    cut = window.rfind(" ")
    if cut < limit // 2:  # no spaces (e.g. CJK): cut at the limit
        cut = limit
    return window[:cut].rstrip(" ,;:–—-") + "…", True


def short_authors(authors: tuple[str, ...] | list[str], keep: int = 3) -> str:
    """'A, B, C +5' — the first `keep` authors and how many more."""
    if len(authors) <= keep + 1:
        return ", ".join(authors)
    return ", ".join(authors[:keep]) + f" +{len(authors) - keep}"


# ---------------------------------------------------------------------------
# Chrome strings (the email's own words: gettext catalogues, see newsletter.mail.locale)


def load_strings(settings: Settings, language: str) -> dict[str, Any]:
    """The chrome strings for `language` (falling back per string to its base language, then English)."""
    return chrome(settings.templates_dir, language).strings()


def format_date(date, strings: dict[str, Any]) -> str:
    """`date` in the language of `strings` (its CLDR month names, its catalogue's date pattern)."""
    return cldr_date(date, strings["date_pattern"], strings.get("_language", "en"))


# ---------------------------------------------------------------------------
# Stages


def jinja_environment(templates_dir: Path):
    """The Jinja environment for email and site templates: autoescaped, strict, deterministic."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(templates_dir)),
        # Everything is escaped except the plain-text part (*.txt.j2).
        autoescape=lambda name: name is None or not name.endswith(".txt.j2"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # `_()` and `ngettext()` in templates: English until a render installs a language's catalogue
    env.install_null_translations(newstyle=True)
    # Each issue is rendered twice (see newsletter.mail.markers.Markers): the Markdown of
    # the second pass comes from this environment's memo.
    env.filters.update(
        markdown=_memo(MARKDOWN.html),
        plain=_memo(MARKDOWN.plain),
        text_with_links=_memo(MARKDOWN.text_with_links),
        excerpt=lambda text, limit=EXCERPT_CHARS: excerpt(text, limit)[0],
        short_authors=short_authors,
        wrap=wrap_text,
    )
    return env


def _memo(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    results: dict[str, Any] = {}

    def memoised(text: str) -> Any:
        if text not in results:
            results[text] = convert(text)
        return results[text]

    return memoised


def render_template(env, name: str, context: dict[str, Any]) -> str:
    from jinja2 import TemplateError, TemplateNotFound, TemplateSyntaxError

    try:
        return env.get_template(name).render(context)
    except TemplateNotFound as exc:
        raise RenderError(f"templates/{exc.name}: template not found") from None
    except TemplateSyntaxError as exc:
        where = exc.filename or exc.name or name
        raise RenderError(f"{_short(where)}:{exc.lineno}: template syntax error: {exc.message}") from None
    except TemplateError as exc:
        raise RenderError(f"templates/{name}: template error: {exc}") from None


def _short(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[parts.index("templates") :]) if "templates" in parts else path


def mjml_to_html(source: str, *, where: str = "MJML") -> str:
    """Compile MJML with mjml-python (the Rust MRML port); no web fonts, no network."""
    import mjml

    try:
        return mjml.mjml2html(source, fonts={}, disable_comments=False)
    except ValueError as exc:
        line = _mjml_error_line(source, str(exc))
        raise RenderError(f"{where}: MJML error: {exc}{line}") from None


def _mjml_error_line(source: str, message: str) -> str:
    match = re.search(r"position (\d+)", message)
    if not match:
        return ""
    return f" (line {source.count(chr(10), 0, int(match.group(1))) + 1} of the generated MJML)"


def inline_css(document: str) -> str:
    """Inline CSS for clients that ignore <style> (premailer), configured for email.

    Keeps the <style> blocks so @media rules and their !important survive (premailer's
    defaults strip both and break the mobile layout); never touches the network;
    keeps class names (the @media rules target them); silences cssutils' chatter.
    """
    from premailer import Premailer

    premailer = Premailer(
        _mark_style_blocks(document),
        allow_network=False,
        keep_style_tags=False,
        strip_important=False,
        remove_classes=False,
        disable_link_rewrites=True,
        disable_validation=True,
        exclude_pseudoclasses=True,
        cssutils_logging_level=logging.CRITICAL,
        cache_css_parsing=True,
        # keep the template's pixel width on <img>: Outlook needs it, CSS "100%" is no substitute
        disable_basic_attributes=["width", "height"],
    )
    return premailer.transform(pretty_print=False)


INLINE_MARKER = "/* inline */"


def _mark_style_blocks(document: str) -> str:
    # Only the template's own rules (an mj-style starting with /* inline */) are inlined;
    # MJML's resets, its responsive column rules and our @media block stay in <style> as
    # they are. Inlining MJML's `table, td {…}` reset into every cell would add ~25% size.
    def mark(match: re.Match[str]) -> str:
        if INLINE_MARKER in match.group(2)[:200]:
            return match.group(0)
        return f'<style{match.group(1)} data-premailer="ignore">{match.group(2)}</style>'

    return re.sub(r"<style([^>]*)>(.*?)</style>", mark, document, flags=re.DOTALL)


def _prune_classes(document: str) -> str:
    """Drop class names no remaining <style> rule uses: after inlining they are dead weight.

    A 45-paper issue carries ~400 such attributes; pruning saves about 5% of the size
    that counts towards Gmail's clipping limit.
    """
    styles = " ".join(re.findall(r"<style[^>]*>(.*?)</style>", document, flags=re.DOTALL))
    used = set(re.findall(r"\.([A-Za-z_][\w-]*)", styles))

    def prune(match: re.Match[str]) -> str:
        kept = [name for name in match.group(1).split() if name in used]
        return f' class="{" ".join(kept)}"' if kept else ""

    return re.sub(r' class="([^"]*)"', prune, document)


def finish_html(document: str) -> str:
    """Last touches: a doctype, no C1 controls, stable line endings."""
    document = CONTROL_CHARS.sub("", document).replace(' data-premailer="ignore"', "")
    document = _prune_classes(document)
    if not document.lstrip().lower().startswith("<!doctype"):
        document = "<!doctype html>\n" + document
    return document.replace("\r\n", "\n").rstrip("\n") + "\n"


def wrap_text(text: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    """Wrap prose at `width` columns without breaking URLs or words.

    Text without spaces (Chinese, Japanese) is broken between wide characters,
    each of which takes two columns.
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if not paragraph.strip():
            lines.append("")
            continue
        lines.extend(
            textwrap.wrap(
                paragraph,
                width=width,
                initial_indent=indent,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [""]
        )
    return "\n".join(part for line in lines for part in _split_wide(line, width, indent))


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _split_wide(line: str, width: int, indent: str) -> list[str]:
    if _width(line) <= width or not any(unicodedata.east_asian_width(c) in "WF" for c in line):
        return [line]
    parts, current, used = [], "", 0
    for char in line:
        w = _width(char)
        # break before a wide character, never before closing punctuation
        if used + w > width and current.strip() and unicodedata.category(char) not in ("Po", "Pe", "Pf"):
            parts.append(current.rstrip())
            current, used = indent, len(indent)
        current += char
        used += w
    parts.append(current.rstrip())
    return parts


def _tidy_text(text: str) -> str:
    text = re.sub(r"\n{3,}", "\n\n", CONTROL_CHARS.sub("", text))
    return "\n".join(line.rstrip() for line in text.splitlines()).strip() + "\n"


# ---------------------------------------------------------------------------
# The whole pipeline


def issue_context(
    library: Library,
    issue: Issue,
    papers: list[Paper],
    nonce: str = "",
    *,
    paper_languages: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What the email templates see; `nonce` "" puts each marker's bare name (see `Markers`).

    `paper_languages` names the papers shown in a translation (by id); the others are
    marked as written, in English.
    """
    settings = library.settings
    words = chrome(settings.templates_dir, issue.language)
    strings = words.strings()
    direction = text_direction(issue.language)
    web_url = issue.web_url(settings)
    items = []
    for paper in papers:
        short, truncated = excerpt(paper.abstract)
        paper_language = (paper_languages or {}).get(paper.id, "en")
        items.append(
            {
                "lang": paper_language,
                "dir": text_direction(paper_language),
                "align": "right" if text_direction(paper_language) == "rtl" else "left",
                "paper": paper,
                "link": paper.link(settings),
                "authors": short_authors(paper.authors),
                "excerpt": short,
                "truncated": truncated,
                "read_more": f"{web_url}#{paper.id}",
                "track": paper_link_attributes(settings, paper.id),
            }
        )
    return {
        "settings": settings,
        "newsletter": settings.name,
        "issue": issue,
        "items": items,
        "papers": papers,
        "strings": strings,
        "language": issue.language,
        "dir": direction,
        "align": "right" if direction == "rtl" else "left",
        "date": words.date(issue.date),
        "papers_count": words.papers(len(papers)),
        "number": words.number,
        "web_url": web_url,
        "unsubscribe_url": Markup(marker(UNSUBSCRIBE_URL, nonce)),
        "preferences_url": Markup(marker(PREFERENCES_URL, nonce)),
        "untracked": untracked_attributes(settings),
        "greeting": Markup(marker(GREETING, nonce)),
        "intro": issue.intro,
        "reason": settings.subscribe_reason
        or strings["reason"].format(newsletter=settings.name, site=settings.base_url),
    }


def render_issue(
    library: Library, issue: Issue, papers: list[Paper], *, language: str | None = None
) -> Rendered:
    """Render one issue: subject, preheader, inlined HTML and the plain-text part, with markers.

    With `language`, the issue is rendered in its best translation for that language
    (subject, preheader, introduction, papers' words, chrome, dates, numbers, plurals):
    render once per language, then personalise each reader's copy at the markers.
    """
    paper_languages: dict[str, str] = {}
    if language is not None:
        issue, papers, paper_languages = library.translations.for_readers_of(language, issue, papers)
    settings = library.settings
    env = jinja_environment(settings.templates_dir)
    env.install_gettext_translations(translations(settings.templates_dir, issue.language), newstyle=True)
    context = issue_context(library, issue, papers, paper_languages=paper_languages)
    bare_source = render_template(env, EMAIL_TEMPLATE, context)
    bare_text = render_template(env, TEXT_TEMPLATE, context)
    nonce = choose_nonce(bare_source, bare_text)
    context = {
        **context,
        "unsubscribe_url": Markup(marker(UNSUBSCRIBE_URL, nonce)),
        "preferences_url": Markup(marker(PREFERENCES_URL, nonce)),
        "greeting": Markup(marker(GREETING, nonce)),
    }
    source = render_template(env, EMAIL_TEMPLATE, context)
    raw_text = render_template(env, TEXT_TEMPLATE, context)
    markers = Markers(
        nonce,
        html=placed_markers(source, bare_source, nonce, EMAIL_TEMPLATE),
        text=placed_markers(raw_text, bare_text, nonce, TEXT_TEMPLATE),
    )
    document = finish_html(inline_css(mjml_to_html(source, where=f"templates/{EMAIL_TEMPLATE}")))
    document = mark_untracked(settings, document)
    text = _tidy_text(raw_text)
    expect_markers(document, markers, markers.html, f"templates/{EMAIL_TEMPLATE} after MJML and inlining")
    expect_markers(text, markers, markers.text, f"templates/{TEXT_TEMPLATE}")
    return Rendered(
        issue=issue,
        papers=tuple(papers),
        subject=issue.subject,
        preheader=issue.preheader,
        html=document,
        text=text,
        language=issue.language,
        direction=context["dir"],
        strings=context["strings"],
        markers=markers,
    )


def personalise_preview(
    rendered: Rendered, *, name: str | None, unsubscribe_url: str, preferences_url: str = ""
) -> tuple[str, str]:
    """(html, text) for one reader: substitution at the markers only (one pass), escaped for each context."""
    markers = rendered.markers
    values = {
        markers.unsubscribe_url: unsubscribe_url,
        markers.greeting: rendered.greeting(name),
        markers.preferences_url: preferences_url,
    }
    pattern = re.compile("|".join(re.escape(m) for m in values))
    html_part = pattern.sub(lambda m: html.escape(values[m.group(0)]), rendered.html)
    text_part = pattern.sub(lambda m: values[m.group(0)], rendered.text)
    return html_part, text_part
