"""The web app's pages and words: templates/web/*.html rendered with templates/web/strings.toml.

Owns the page strings' loading and language fallback (per key: the language, its base
language, then English, over the shared chrome strings of templates/strings.toml), the
choice of page language for a request, and the `t` object templates use for words.
HTTP (status codes, headers) stays in newsletter.web.app.
"""

from __future__ import annotations

import contextlib
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, DictLoader, FileSystemLoader

from newsletter.config import Settings, text_direction
from newsletter.errors import ConfigError, NewsletterError
from newsletter.mail.render import jinja_environment, load_strings, render_template

WEB_STRINGS = "web/strings.toml"
PAGE_TEMPLATES = ("base.html", "page.html", "subscribe.html", "unsubscribe.html")
# templates/web/confirm.html, for templates folders that predate it
CONFIRM_PAGE = """{% extends "web/base.html" %}
{% block title %}{{ t.confirm_button }}{% endblock %}
{% block content %}
<p>{{ t("confirm_intro", email=email) }}</p>
<form method="post" action="confirm">
  <input type="hidden" name="token" value="{{ token }}">
  <button type="submit">{{ t.confirm_button }}</button>
</form>
{% endblock %}
"""


# The templates `newsletter init` copies: where a folder made before a page existed finds it.
BUILT_IN_TEMPLATES = Path(__file__).parent.parent / "scaffold" / "templates"


class Pages:
    """Renders templates/web/*.html with the web strings of one language."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = jinja_environment(settings.templates_dir)
        # Newsletters made before the confirmation or preferences page existed lack them.
        self.env.loader = ChoiceLoader(
            [
                self.env.loader,
                DictLoader({"web/confirm.html": CONFIRM_PAGE}),
                FileSystemLoader(str(BUILT_IN_TEMPLATES)),
            ]
        )
        path = settings.templates_dir / WEB_STRINGS
        try:
            self.table: dict[str, dict[str, Any]] = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: the web pages' strings are missing\n\n"
                "Copy templates/web/ from the newsletter repository into your templates folder."
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        if "en" not in self.table:
            raise ConfigError(f"{path}: expected a table [en] of page strings, found none")
        for name in PAGE_TEMPLATES:
            if not (settings.templates_dir / "web" / name).is_file():
                raise ConfigError(f"{settings.templates_dir / 'web' / name}: page template missing")

    @cached_property
    def languages(self) -> list[str]:
        return list(self.table)

    def strings(self, language: str) -> dict[str, Any]:
        """The web pages' words for `language`, over the shared chrome strings (templates/strings.toml).

        Layers, lowest first: web English, the shared strings (already resolved for the
        language), then the web strings of the base language and of the language itself.
        """
        merged: dict[str, Any] = dict(self.table["en"])
        with contextlib.suppress(NewsletterError):  # the web strings alone are complete in English
            merged.update(load_strings(self.settings, language))
        for lang in dict.fromkeys([language.split("-")[0], language]):
            if lang != "en":
                merged.update(self.table.get(lang, {}))
        return merged

    def words(self, language: str, **values: str) -> Words:
        """The `t` of the templates for `language`, formatting with `values` (newsletter, site...)."""
        return Words(self.strings(language), values)

    def language_of(self, wanted: str | None) -> str:
        """The best language we have pages in for `wanted` (a tag), else the newsletter's."""
        for candidate in (wanted, (wanted or "").split("-")[0]):
            if candidate and candidate in self.table:
                return candidate
        return self.settings.language if self.settings.language in self.table else "en"

    def render(self, template: str, language: str, **context: Any) -> str:
        """templates/web/`template` in `language`; `context` overrides the common variables."""
        base = {
            "lang": language,
            "dir": text_direction(language),
            "t": self.words(
                language,
                newsletter=self.settings.name,
                site=self.settings.base_url,
                contact=self.settings.reply_to or self.settings.sender_address.addr_spec,
            ),
            "newsletter": self.settings.name,
            "archive_url": self.settings.base_url,
            "web_url": self.settings.web_url,
        }
        return render_template(self.env, f"web/{template}", {**base, **context})


class Words:
    """`t.key` or `t("key", email=...)` in templates: a string, formatted with the newsletter's words."""

    def __init__(self, strings: dict[str, Any], words: dict[str, str]) -> None:
        self._strings = strings
        self._words = words

    def __call__(self, key: str, **values: Any) -> str:
        return str(self._strings[key]).format(**{**self._words, **values})

    def __getattr__(self, key: str) -> str:
        if key.startswith("_") or key not in self._strings:
            raise AttributeError(key)  # Jinja probes attributes (jinja_pass_arg); a miss is Undefined
        return self(key)
