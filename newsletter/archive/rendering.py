"""Rendering the archive's pages: the Jinja environment, each language's words, and what many pages show alike, rendered once per build.

`PageRendering` is the part of `newsletter.archive.pages.SitePages` (and of the quick
rebuild's `newsletter.archive.indexed.IndexedSite`) that renders: a page's context, the
blocks and frame parts that thousands of pages show alike (a paper's text and links,
the page frame's head, header and footer), each rendered once and kept for the rest of
the build, and the templates, looked up once. What they show stays escaped as the
templates escape it: a block is the very output its first page rendered.
"""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from newsletter.archive.keys import Memo
from newsletter.archive.languages import (
    LanguageLink,
    LocalWords,
    SiteLanguages,
    language_name,
    same_language,
)
from newsletter.config import Settings, text_direction
from newsletter.content.fragments import FragmentCache
from newsletter.content.library import Paper
from newsletter.mail.locale import chrome
from newsletter.mail.render import MARKDOWN, excerpt, jinja_environment, render_template

__all__ = ["CATALOGUES", "PageRendering", "Strings", "meta_description"]

CATALOGUES = "cache/catalogues"  # compiled catalogues, under paths.build


def meta_description(html: str, limit: int = 160) -> str:
    """About `limit` characters of an HTML fragment's text, cut at a word, for <meta name=description>.

    Made from the already rendered (and memoised) HTML, so a paper's abstract is parsed once.
    """
    text = " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", html)).split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:.") + "…"


class Strings(dict):
    """A language's chrome strings as the site's templates read them (`s.upvotes`): keys that are attributes too.

    Jinja looks `s.upvotes` up as an attribute first: on a plain dict each lookup raised
    and caught an AttributeError, forty times a page. A key that names a dict method
    (none does) stays an item only, as on a plain dict.
    """

    def __init__(self, strings: dict[str, Any]) -> None:
        super().__init__(strings)
        self.__dict__.update({k: v for k, v in strings.items() if not hasattr(dict, k)})


class PageRendering:
    """The rendering half of a site's pages; the class using it sets the attributes below."""

    settings: Settings
    memo: Memo
    fragments: FragmentCache
    languages: SiteLanguages
    css_path: str
    tag_paths: dict[str, str]
    featured: Any  # paper id -> the published issues featuring it

    def _start_rendering(self) -> None:
        """The Jinja environment and what rendering keeps for the rest of the build (words, blocks, frames)."""
        self.env = self._environment()
        self._chrome: dict[str, tuple[LocalWords, dict[str, Any]]] = {}
        self._blocks: dict[tuple, tuple[Paper, str]] = {}
        self._contexts: dict[tuple[str, str], dict[str, Any]] = {}
        self._frames: dict[tuple[str, str, str, str], str] = {}
        self._templates: dict[str, tuple[Any, dict[str, Any]]] = {}

    def _environment(self) -> Any:
        """The Jinja environment of the site's templates, with the filters that keep what they render."""
        env = jinja_environment(self.settings.templates_dir)
        # the templates do not change during a build: no stat of each template file per page
        env.auto_reload = False
        env.filters["markdown"] = lambda text: Markup(
            self.fragments.get("html", text, lambda: str(MARKDOWN.html(text)))
        )
        env.filters["excerpt"] = lambda text: self.memo.get("excerpt", text, lambda: excerpt(text)[0])
        env.filters["description"] = lambda text: meta_description(env.filters["markdown"](text))
        return env

    def words(self, language: str) -> tuple[LocalWords, dict[str, Any]]:
        """The chrome of `language` and its strings, loaded once per build."""
        if language not in self._chrome:
            words = chrome(self.settings.templates_dir, language, self.settings.build_dir / CATALOGUES)
            self._chrome[language] = (LocalWords(words), Strings(words.strings()))
        return self._chrome[language]

    def strings(self, language: str) -> dict[str, Any]:
        return self.words(language)[1]

    # -- contexts

    def base_context(
        self,
        *,
        depth: int | None,
        language: str,
        path: str,
        links: list[LanguageLink] | None = None,
        paper_languages: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """`root` is the relative way back to the site root; None (404 page): absolute URLs.

        `home` is the index of the page's language (the root index unless that language
        has its own); `links` are the page's versions in other languages.
        """
        root = self.settings.base_url if depth is None else "../" * depth
        home = root
        if language in self.languages.languages:
            index = self.languages.index_path(language)
            inside = depth is not None and path.startswith(index)
            home = "../" * (depth - 1) if inside else root + index
        shown_in = paper_languages or {}
        return {
            **self._shared_context(root, language),
            "home": home,
            "canonical": self.settings.url(path),
            "alternates": self.languages.alternates(links or []),
            "language_links": links or [],
            "paper_lang": lambda paper: shown_in.get(paper.id, "en"),  # papers are written in English
            "paper_block": lambda paper, caller, part="": self._paper_block(
                paper, caller, root, language, shown_in, part
            ),
            "paper_text": lambda paper, caller: self._paper_block(paper, caller, None, language, shown_in),
            "frame": lambda part, caller: self._frame(part, caller, root, home, language),
        }

    def _shared_context(self, root: str, language: str) -> dict[str, Any]:
        """What every page at `root` in `language` sees alike, made once per build (20,000 pages ask)."""
        found = self._contexts.get((root, language))
        if found is not None:
            return found
        words, strings = self.words(language)
        tag_urls: dict[str, str] = {}

        def tag_href(tag: str) -> str:
            url = tag_urls.get(tag)
            if url is None:
                url = tag_urls[tag] = root + quote(self.tag_paths[tag])
            return url

        found = self._contexts[root, language] = {
            "settings": self.settings,
            "newsletter": self.settings.name,
            "s": strings,
            "lang": language,
            "dir": text_direction(language),
            "root": root,
            "edition": language if language in self.languages.languages else None,
            "css": root + self.css_path,
            "language_href": lambda link: (root + link.path) or "./",
            "language_name": language_name,
            "settings_lang": self._lang_attributes(self.settings.language, language),
            "same_language": same_language,
            "subscribe_url": self.settings.web("subscribe"),
            "format_date": words.date,
            "count_label": words.papers,  # the CLDR plural form for the count (Arabic has six)
            "number": words.number,
            "issue_href": lambda issue: root + issue.web_path,
            "paper_href": lambda paper: f"{root}papers/{paper.id}/",
            "tag_href": tag_href,
            "paper_link": lambda paper: (
                paper.url or paper.arxiv_url or paper.project_page or f"{root}papers/{paper.id}/"
            ),
            "featured": self.featured,
            "direction": text_direction,
        }
        return found

    def _paper_block(
        self,
        paper: Paper,
        caller: Callable[[], str],
        root: str | None,
        language: str,
        shown_in: dict[str, str],
        part: str = "",
    ) -> str:
        """A paper's block, rendered once per build for each way it looks.

        An issue's page and its papers' pages show a paper's block alike (same depth, same
        language): 20,000 paper pages reuse what 2,000 issue pages rendered. The block is
        made of the paper, the page's language (words, dates, `lang`), the paper's language
        and, for `{% call paper_block(paper) %}`, the way back to the root (tag links); the
        paper object is the same one for the whole build, a translation's a distinct one.
        `{% call paper_text(paper) %}` is for what shows no link into the site (the paper's
        meta line and abstract): it is the same at any depth, so an issue's feed entry
        (absolute links) and its page (relative ones) render it once between them.
        `part` names another block of the paper (`paper_block(paper, part="listed")`: its
        line on the pages of its tags).
        """
        key = (id(paper), root, language, shown_in.get(paper.id), part)
        found = self._blocks.get(key)
        if found is None:
            found = self._blocks[key] = (paper, caller())  # the paper is kept: its id stays its own
        return found[1]

    def _frame(self, part: str, caller: Callable[[], str], root: str, home: str, language: str) -> str:
        """A part of the page frame (`{% call frame("head") %}`), rendered once per build for each language and place.

        The header and footer of 20,000 pages differ only by the way back to the root, the
        index of the page's language and its words.
        """
        key = (part, root, home, language)
        found = self._frames.get(key)
        if found is None:
            found = self._frames[key] = caller()
        return found

    @staticmethod
    def _lang_attributes(language: str, page_language: str) -> Markup:
        """` lang=".." dir=".."` for text in `language` on a page in another (else nothing)."""
        if same_language(language, page_language):
            return Markup("")
        return Markup(' lang="{}" dir="{}"').format(language, text_direction(language))

    def render(self, template: str, context: dict[str, Any]) -> str:
        """One page of `template` with `context`.

        The template and its globals are looked up once per build: Jinja's own `render`
        asks its cache for the template and copies the globals into each page's context.
        The first page of each template, and any page that fails, goes through
        `render_template`, which says what is wrong.
        """
        found = self._templates.get(template)
        if found is None:
            page = render_template(self.env, f"site/{template}", context)
            loaded = self.env.get_template(f"site/{template}")
            self._templates[template] = (loaded, dict(loaded.globals))
            return page
        loaded, globals_ = found
        try:
            return self.env.concat(
                loaded.root_render_func(loaded.new_context({**globals_, **context}, shared=True))
            )
        except Exception:
            return render_template(self.env, f"site/{template}", context)  # raises, with its words
