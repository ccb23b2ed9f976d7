"""The archive's quick rebuild: an index of what the pages were made from, so a few edited files re-key only the pages that show them.

A full build (`newsletter.archive.site`) keys every page: at 2,000 issues it reads
22,000 cached papers and issues and hashes 22,000 keys before it renders a page. After
each build into a folder, an index is kept beside the content cache
(`<paths.build>/cache/archive/<hash of the site folder>.pickle`): every entry of the
content folders with its stat and digest, the site's structure (each published issue's
papers, each tag's papers, the fingerprints the keys were made from, the words of every
translation, each issue's versions and each language's issues) and the hash of the
manifest it goes with. The next `newsletter archive build` stats the content folders and
compares. When only papers, issues and translations changed, and not their *shape* (what
decides which papers an issue features, the order of issues and tags, what other pages
show of an issue: everything but an issue's introduction and preheader, a paper's fields
but its id, title, tags, date, upvotes, rank and code, a translation's words but its title
and subject), only the pages that show the edited files are keyed, in every language: an
issue's versions (a translation without an introduction or preheader of its own shows its
original's), the indexes showing an excerpt that changed and the feed pages carrying it; a
paper's page, its tags' pages, and every version of the issues featuring it, with their
feeds. Each is rendered only when its key changed, by the same code as in a full build;
every other file's content is looked up in the content cache (a translation: in the index)
one by one, when a page needs it.

Anything else falls back to the full, keyed build, which writes a new index: a change
to the code, templates, catalogues or settings, a file or translation added or removed, a
changed freeze record or other file, a file with a problem or a warning (a translation
whose `translated_from` is not its original's hash: the full build warns of it), an index
that is missing, from another version, made for another manifest or damaged, a cached
entry whose digest differs from the index's. Correctness first: when unsure, everything
is keyed again. The index is unpickled with no class allowed (strings, numbers, tuples,
lists and dicts) and carries the hash of its own payload.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from newsletter.archive.feeds import feed_pages
from newsletter.archive.indexed import IndexedSite, indexed_translations
from newsletter.archive.keys import Memo
from newsletter.archive.manifest_text import ManifestText
from newsletter.archive.pages import Page
from newsletter.archive.site import (
    COMPILED_TEMPLATES,
    MANIFEST,
    BuildReport,
    _collector_paused,
    _compiled_templates,
    _write_atomic,
    _write_page,
    build_site,
)
from newsletter.archive.source_files import SourceFiles, Stale, file_stats, folder_stat
from newsletter.archive.sources import (
    ISSUES,
    PAPERS,
    index_path,
    load_index,
    save_journal,
    site_inputs,
    write_index,
)
from newsletter.archive.translated import edited_translation, file_digest, stale
from newsletter.config import Settings
from newsletter.content.cache import RACY_NS, ContentCache
from newsletter.content.freeze import FREEZE_SUFFIX, read_freeze
from newsletter.content.issues import Issue
from newsletter.content.library import load_library, read_content
from newsletter.content.papers import Paper
from newsletter.errors import Problem
from newsletter.mail.render import excerpt

__all__ = ["build_archive"]

# What other pages show of a paper, or decide from it (which issue features it, the order
# of a tag's papers): an edit to any of these re-keys every page.
PAPER_SHAPE = ("id", "title", "tags", "published", "upvotes", "rank", "code")
# An issue's fields that only its own pages, its feed entries and the index's excerpt show.
ISSUE_CONTENT = ("intro", "preheader")


def build_archive(settings: Settings, out: Path | None = None) -> BuildReport:
    """Build the archive into `out` (default settings.site_dir): quickly when the index allows, else in full."""
    out = Path(out) if out is not None else settings.site_dir
    try:
        # as in a full build: what the index holds is long-lived, and the collector's walks
        # over it while it is unpickled and looked up cost more than the rest of a small rebuild
        with _collector_paused() as resume:
            return _QuickBuild(settings, out).run(resume)
    except Stale:
        pass
    started = time.time_ns()
    folders = {PAPERS: folder_stat(settings.papers_dir), ISSUES: folder_stat(settings.issues_dir)}
    cache = ContentCache.for_settings(settings)
    library = load_library(settings, cache=cache)
    report = build_site(library, out)
    write_index(settings, out, cache, report.site, report.total, started, folders)
    return report


# ---------------------------------------------------------------------------
# The quick rebuild


def _same_shape(old: Any, new: Any) -> bool:
    if type(old) is not type(new):
        return False
    if isinstance(new, Paper):
        return all(getattr(old, f) == getattr(new, f) for f in PAPER_SHAPE)
    if isinstance(new, Issue):
        # `frozen` comes from the freeze record, a file of its own that the index follows
        fields = [f for f in new.__dataclass_fields__ if f not in ISSUE_CONTENT and f != "frozen"]
        return all(getattr(old, f) == getattr(new, f) for f in fields)
    return False


class _QuickBuild:
    """One quick rebuild; raises `Stale` whenever the full build must do it instead."""

    def __init__(self, settings: Settings, out: Path) -> None:
        self.settings = settings
        self.out = out
        self.path = index_path(settings, out)
        self.index = load_index(self.path)
        self.cache = ContentCache.for_settings(settings)
        if self.index["out"] != str(out.resolve()) or self.index["inputs"] != site_inputs(
            settings, self.cache.salt
        ):
            raise Stale
        self.folders = {PAPERS: settings.papers_dir, ISSUES: settings.issues_dir}
        self.touched = False  # files whose stat changed but not their bytes
        self.before: dict[str, Any] = {}  # what reading each edited file gave before
        self.fresh_papers: dict[str, Paper] = {}
        self.fresh_issues: dict[str, Issue] = {}
        self.fresh_translations: dict[str, tuple] = {}  # 'kind/name' -> the index's record, as now

    def run(self, resume: Callable[[], None]) -> BuildReport:
        """`resume`: collect garbage again from here on (the pages' rendering makes cycles)."""
        try:
            manifest_bytes = (self.out / MANIFEST).read_bytes()
        except OSError:
            raise Stale from None
        if hashlib.sha256(manifest_bytes).hexdigest() != self.index["manifest"]:
            raise Stale
        changed = self._changed(self.index["files"])
        report = BuildReport(out=self.out)
        report.unchanged = self.index["pages"]
        if not changed:
            if self.touched:
                self._save(manifest_bytes)
            return report
        fresh = self._read_changed(changed)
        manifest = ManifestText(manifest_bytes)
        stored_memo = manifest.memo()
        memo = Memo({k: v for k, v in stored_memo.items() if isinstance(v, str)})
        kept, shown = self._excerpts(fresh, memo, stored_memo)
        site = self._site(fresh, memo)
        site.env.bytecode_cache = _compiled_templates(self.settings.build_dir / COMPILED_TEMPLATES)
        records: dict[str, dict[str, Any]] = {}
        pages = self._pages(site, fresh, shown)
        for page in pages:  # every key before any write: a key that finds the index stale writes nothing
            page.keyed()
        resume()
        for page in pages:
            before = manifest.record(page.path)
            record = _write_page(page, str(self.out), before, report)
            if record is not before:
                records[page.path] = record
        site.fragments.save()
        report.unchanged = self.index["pages"] - len(report.written)  # keyed or not
        if records or kept != stored_memo:
            manifest_bytes = manifest.patched(records, kept)
            _write_atomic(self.out / MANIFEST, manifest_bytes)
        self.cache.save(complete=False)
        self.index["translations"].update(self.fresh_translations)
        self.index["journal"]["translations"].update(self.fresh_translations)
        for obj in fresh.values():
            if isinstance(obj, Issue) and obj.slug in self.index["issue_fp"]:
                fp = self.index["issue_fp"][obj.slug] = site.issue_fp[obj.slug]
                self.index["journal"]["issue_fp"][obj.slug] = fp
        self._save(manifest_bytes)
        return report

    def _changed(self, files: SourceFiles) -> list[str]:
        """The content files whose bytes changed since the index was written ('papers/<name>')."""
        changed = []
        now = time.time_ns()
        if files.names.keys() != self.folders.keys():
            raise Stale
        for kind, folder in self.folders.items():
            names = files.names[kind]
            self._listed(files, kind, folder, names, now)
            stats = file_stats(folder, names)
            for n in files.moved(kind, stats):
                name = names[n]
                recorded = files.digest(kind, name)
                data = _read_bytes(os.path.join(folder, name))
                content = name.endswith(".md") and not name.startswith(".")
                if data is None or recorded is None:
                    raise Stale
                # as the index recorded it: a translation's or another file's is of its bytes
                digest = file_digest(data) if files.plain(kind, n) else self.cache.file_digest(data)
                if digest == recorded:  # touched, not changed: its stat is recorded again
                    files.set(kind, name, files.stat_at(stats, n), now, digest)
                    self.touched = True
                elif not content:
                    raise Stale  # a freeze record, or anything but a paper, an issue or a translation
                else:
                    changed.append(f"{kind}/{name}")
        return sorted(changed)

    def _listed(self, files: SourceFiles, kind: str, folder: Path, names: list[str], now: int) -> None:
        """Check that the folder holds the files the index names; list it only when its own stat changed."""
        stat = folder_stat(folder)
        recorded = files.folders.get(kind)
        if stat is None or recorded is None:
            raise Stale
        if stat == recorded[:3] and max(stat[0], stat[1]) + RACY_NS < recorded[3]:
            return  # no entry came or went
        try:
            listed = os.listdir(folder)
        except OSError:
            raise Stale from None
        if len(listed) != len(names) or set(listed) != set(names):
            raise Stale  # a file came or went
        files.set_folder(kind, stat, now)
        self.touched = True

    def _read_changed(self, changed: list[str]) -> dict[str, Paper | Issue]:
        """The edited papers and issues read again, each the shape it had (else `Stale`)."""
        fresh: dict[str, Paper | Issue] = {}
        for key in changed:
            kind, name = key.split("/", 1)
            path = self.folders[kind] / name
            if key in self.index["translations"]:
                self._read_translation(key, path)
                continue
            before = self._cached(kind, name)
            problems: list[Problem] = []
            now = read_content(self.settings, path, problems, self.cache)
            if problems or now is None or not _same_shape(before, now):
                raise Stale
            fresh[key] = now
            self.before[key] = before
            digest = self.cache.digest(path)
            entry = self.cache.used.get(str(path))
            if digest is None or entry is None:
                raise Stale
            self.index["files"].set(kind, name, entry[0], entry[1], digest)
        edited = {key.removesuffix(".md") for key in fresh}
        if stale(edited, self.index["translations"], self.fresh_translations, self.folders):
            raise Stale  # an original edited, a translation of it not: the full build warns
        return fresh

    def _read_translation(self, key: str, path: Path) -> None:
        """An edited translation read again (`translated.edited_translation`), else `Stale`."""
        kind, name = key.split("/", 1)
        found = edited_translation(self.settings, kind, path, self.index["translations"][key])
        if found is None:
            raise Stale
        record, stat, read_ns, digest = found
        self.before[key] = self.index["translations"][key]
        self.fresh_translations[key] = record
        self.index["files"].set(kind, name, stat, read_ns, digest)

    def _cached(self, kind: str, name: str, path: Path | None = None) -> Any:
        """What reading an unchanged file gave, from the content cache, as the index knows it."""
        found = self.cache.lookup(os.path.join(self.folders[kind], name), path)
        recorded = self.index["files"].digest(kind, name)
        if found is None or recorded is None or found[1] != recorded or found[2]:
            raise Stale
        return found[0]

    def _excerpts(
        self, fresh: dict[str, Paper | Issue], memo: Memo, stored: dict[str, Any]
    ) -> tuple[dict[str, Any], set[str]]:
        """The memo a full build would keep now, and the versions (pages) whose excerpt an index shows changed.

        A full build keeps the excerpt of the introduction of every version an index
        shows; the index records which each one's is, so only the edited versions' are
        worked out (a translation without an introduction of its own shows its original's).
        """
        excerpts: dict[str, str] = self.index["excerpts"]
        kept = dict(stored)
        replaced = set()
        shown: set[str] = set()
        for path, (old, new) in self._intros(fresh).items():
            if path not in excerpts or old == new:
                continue
            replaced.add(excerpts[path])
            excerpts[path] = Memo.key("excerpt", new)
            self.index["journal"]["excerpts"][path] = excerpts[path]
            shown_old = self._excerpt(memo, old)
            shown_new = self._excerpt(memo, new)
            if shown_new is not None:
                kept[excerpts[path]] = shown_new
            if shown_old != shown_new:
                shown.add(path)
        for key in replaced - set(excerpts.values()):
            kept.pop(key, None)
        return kept, shown

    def _intros(self, fresh: dict[str, Paper | Issue]) -> dict[str, tuple[str, str]]:
        """Each version of an edited issue (or of an issue with an edited translation): its page -> its introduction before and now."""
        slugs = {obj.slug for obj in fresh.values() if isinstance(obj, Issue)}
        slugs.update(r[0] for key, r in self.fresh_translations.items() if key.startswith(ISSUES + "/"))
        intros: dict[str, tuple[str, str]] = {}
        for slug in sorted(slugs):
            key = f"{ISSUES}/{slug}.md"
            now = fresh.get(key) or self._cached(ISSUES, f"{slug}.md")
            before = self.before.get(key, now)
            if not isinstance(now, Issue) or not isinstance(before, Issue):
                raise Stale
            intros[f"issues/{slug}/"] = (before.intro, now.intro)
            for language in self.index["versions"].get(slug, ()):
                name = f"{ISSUES}/{slug}.{language}.md"
                record = self.index["translations"].get(name)
                if record is None:
                    raise Stale
                old = self.before.get(name, record)[2].get("intro", before.intro)
                new = self.fresh_translations.get(name, record)[2].get("intro", now.intro)
                intros[f"{language}/issues/{slug}/"] = (old, new)
        return intros

    @staticmethod
    def _excerpt(memo: Memo, intro: str) -> str | None:
        """What an index shows of an introduction (as `SitePages._index_entry`)."""
        return memo.get("excerpt", intro, lambda: excerpt(intro)[0]) if intro else None

    def _issue(self, slug: str) -> Issue:
        issue = self.fresh_issues.get(slug)
        if issue is None:
            issue = self._cached(ISSUES, f"{slug}.md", self.settings.issues_dir / f"{slug}.md")
        # An unchanged issue comes without its freeze record (which did not change): its
        # fingerprint is the index's, and what selection made of it is too.
        if not isinstance(issue, Issue) or issue.slug != slug or not issue.published:
            raise Stale
        return issue

    def _paper(self, pid: str) -> Paper:
        paper = self.fresh_papers.get(pid) or self._cached(PAPERS, f"{pid}.md")
        if not isinstance(paper, Paper) or paper.id != pid:
            raise Stale
        return paper

    def _digest(self, pid: str) -> str:
        recorded = self.index["files"].digest(PAPERS, f"{pid}.md")
        if recorded is None:
            raise Stale
        return recorded

    def _site(self, fresh: dict[str, Paper | Issue], memo: Memo) -> IndexedSite:
        """The site's pages as a full build lists them, every paper and issue looked up when first needed."""
        self.fresh_papers = {obj.id: obj for obj in fresh.values() if isinstance(obj, Paper)}
        self.fresh_issues = {obj.slug: obj for obj in fresh.values() if isinstance(obj, Issue)}
        if any(pid in self.index["paper_fp"] for pid in self.fresh_papers):
            raise Stale  # a paper keyed by its fields: the index cannot follow it
        return IndexedSite(
            self.settings,
            self.index,
            memo,
            issue=self._issue,
            paper=self._paper,
            digest=self._digest,
            edited=set(self.fresh_issues),
            translations=indexed_translations(
                self.index["translations"], self.fresh_translations, self.folders
            ),
            original=self._original,
        )

    def _original(self, issue: Issue) -> Issue:
        """An issue with its freeze record, as the full build reads it: what its translations are made from."""
        slug = issue.slug
        if issue.frozen is not None or slug in self.fresh_issues:
            return issue  # read again with its record
        if self.index["files"].digest(ISSUES, f"{slug}{FREEZE_SUFFIX}") is None:
            return issue  # none in the folder the index lists
        problems: list[Problem] = []
        frozen = read_freeze(self.settings.issues_dir / f"{slug}.md", problems, f"issues/{slug}.md")
        if problems:
            raise Stale
        return dataclasses.replace(issue, frozen=frozen) if frozen else issue

    def _pages(self, site: IndexedSite, fresh: dict[str, Paper | Issue], shown: set[str]) -> list[Page]:
        """The pages that show an edited file: keyed, and rendered when their key changed."""
        issues: set[str] = set()
        papers: set[str] = set()
        for obj in fresh.values():
            if isinstance(obj, Issue) and obj.slug in site.ids_of:
                issues.add(obj.slug)
            elif isinstance(obj, Paper) and obj.id in site.papers:
                papers.add(obj.id)
                issues.update(i.slug for i in site.featured[obj.id])
        # a translation is shown by the versions of its issue (a paper's: of the issues featuring it)
        for key, (original, *_) in self.fresh_translations.items():
            if key.startswith(ISSUES + "/") and original in site.ids_of:
                issues.add(original)
            elif key.startswith(PAPERS + "/") and original in site.papers:
                issues.update(i.slug for i in site.featured[original])
        pages = feed_pages(site, issues) if issues else []
        if shown:
            pages += site.index_pages(self._indexes(site, shown))
        for n, slug in enumerate(site.slugs):
            if slug in issues:
                pages += [site.issue_version_page(v, n) for v in site.languages.versions[slug]]
        pages += [site.paper_entry(pid) for pid in sorted(papers)]
        tags = sorted({tag for pid in papers for tag in site.papers[pid].tags})
        pages += [site.tag_entry(tag) for tag in tags]
        return pages

    def _indexes(self, site: IndexedSite, shown: set[str]) -> set[str]:
        """The languages whose index shows one of these versions: a translation its language's,
        an original every index but those of the languages it is translated into."""
        found = set()
        for path in shown:
            if path.startswith("issues/"):
                slug = path.removeprefix("issues/").removesuffix("/")
                own = site.by_slug[slug].language
                translated = self.index["versions"].get(slug, ())
                found.update(
                    lang
                    for lang in [self.settings.language, *site.languages.languages]
                    if lang == own or lang not in translated
                )
            else:
                found.add(path.split("/", 1)[0])
        return found

    def _save(self, manifest: bytes) -> None:
        self.index["manifest"] = hashlib.sha256(manifest).hexdigest()
        save_journal(self.path, self.index)


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None
