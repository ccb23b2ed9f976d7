"""The archive's quick rebuild: an index of what the pages were made from, so a few edited files re-key only the pages that show them.

A full build (`newsletter.archive.site`) keys every page: at 2,000 issues it reads
22,000 cached papers and issues and hashes 22,000 keys before it renders a page. After
each build into a folder, an index is kept beside the content cache
(`<paths.build>/cache/archive/<hash of the site folder>.pickle`): every entry of the
content folders with its stat and digest, the site's structure (each published issue's
papers, each tag's papers, the fingerprints the keys were made from) and the hash of the
manifest it goes with. The next `newsletter archive build` stats the content folders and
compares. When only papers and issues changed, and not their *shape* (what decides which
papers an issue features, the order of issues and tags, what other pages show of an
issue: everything but an issue's introduction and preheader, and a paper's fields but
its id, title, tags, date, upvotes, rank and code), only the pages that show the edited
files are keyed (an issue: its page, the index and the feed pages carrying it; a paper:
its page, its tags' pages, and the pages and feeds of the issues featuring it) and each
is rendered only when its key changed, by the same code as in a full build; every other
file's content is looked up in the content cache one by one, when a page needs it.

Anything else falls back to the full, keyed build, which writes a new index: a change
to the code, templates, catalogues or settings, a file added, removed or other than a
paper or an issue (a freeze record, a translation), a file with a problem or a warning,
an index that is missing, from another version, made for another manifest or damaged,
a cached entry whose digest differs from the index's. Correctness first: when unsure,
everything is keyed again. The index is unpickled with no class allowed (strings,
numbers, tuples, lists and dicts) and carries the hash of its own payload.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from newsletter.archive.feeds import feed_pages
from newsletter.archive.indexed import IndexedSite
from newsletter.archive.keys import Memo
from newsletter.archive.pages import Page
from newsletter.archive.site import (
    COMPILED_TEMPLATES,
    MANIFEST,
    MANIFEST_VERSION,
    BuildReport,
    _compiled_templates,
    _write_atomic,
    _write_page,
    build_site,
)
from newsletter.archive.sources import (
    ISSUES,
    PAPERS,
    SourceFiles,
    Stale,
    folder_stat,
    index_path,
    load_index,
    save_journal,
    site_inputs,
    write_index,
)
from newsletter.config import Settings
from newsletter.content.cache import RACY_NS, ContentCache
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
        return _QuickBuild(settings, out).run()
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


def _json(value: object) -> bytes:
    """JSON as `site._write_manifest` writes it."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class _ManifestText:
    """The manifest as `site._write_manifest` wrote it (the index has its hash): records read and replaced in place.

    Parsing and writing out 22,000 records cost more than the rest of a one-issue
    rebuild; a record is found by its path, which, followed by `:{`, cannot occur inside
    a JSON string (a quote there is always escaped), and records hold no braces.
    """

    HEAD = b'{"files":{'
    MIDDLE = b'},"generator":"newsletter","memo":'
    TAIL = b',"version":' + str(MANIFEST_VERSION).encode() + b"}"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.files_end = data.find(self.MIDDLE)
        if not data.startswith(self.HEAD) or self.files_end < 0 or not data.endswith(self.TAIL):
            raise Stale
        self.memo_start = self.files_end + len(self.MIDDLE)
        self.memo_end = len(data) - len(self.TAIL)
        self.found: dict[str, tuple[int, int]] = {}

    def memo(self) -> dict[str, Any]:
        try:
            memo = json.loads(self.data[self.memo_start : self.memo_end])
        except ValueError:
            raise Stale from None
        if type(memo) is not dict:
            raise Stale
        return memo

    def record(self, path: str) -> dict[str, Any]:
        needle = _json(path) + b":{"
        at = self.data.find(needle, len(self.HEAD) - 1, self.files_end)
        if at < 0 or self.data[at - 1 : at] not in (b"{", b","):
            raise Stale  # a page the manifest does not list: the full build knows what to do
        start = at + len(needle) - 1
        stop = self.data.find(b"}", start) + 1
        self.found[path] = (start, stop)
        try:
            record = json.loads(self.data[start:stop])
        except ValueError:
            raise Stale from None
        if type(record) is not dict:
            raise Stale
        return record

    def patched(self, records: dict[str, dict[str, Any]], memo: dict[str, str]) -> bytes:
        """The manifest with these records (of paths read with `record`) and this memo."""
        pieces = []
        done = 0
        for start, stop, path in sorted((*self.found[path], path) for path in records):
            pieces += [self.data[done:start], _json(records[path])]
            done = stop
        pieces += [self.data[done : self.memo_start], _json(dict(sorted(memo.items()))), self.TAIL]
        return b"".join(pieces)


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

    def run(self) -> BuildReport:
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
        manifest = _ManifestText(manifest_bytes)
        stored_memo = manifest.memo()
        memo = Memo({k: v for k, v in stored_memo.items() if isinstance(v, str)})
        kept, index_changed = self._excerpts(fresh, memo, stored_memo)
        site = self._site(fresh, memo)
        site.env.bytecode_cache = _compiled_templates(self.settings.build_dir / COMPILED_TEMPLATES)
        records: dict[str, dict[str, Any]] = {}
        pages = self._pages(site, fresh, index_changed)
        for page in pages:  # every key before any write: a key that finds the index stale writes nothing
            page.keyed()
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
            numbers = files.numbers[kind]
            try:
                fd = os.open(folder, os.O_RDONLY)
            except OSError:
                raise Stale from None
            try:
                for n, name in enumerate(names):  # 20,000 stats: the loop is kept tight
                    st = os.stat(name, dir_fd=fd)
                    n *= 5
                    if (
                        st.st_mtime_ns == numbers[n + 1]
                        and st.st_size == numbers[n]
                        and st.st_ctime_ns == numbers[n + 2]
                        and st.st_ino == numbers[n + 3]
                        and max(st.st_mtime_ns, st.st_ctime_ns) + RACY_NS < numbers[n + 4]
                    ):
                        continue
                    recorded = files.digest(kind, name)
                    if recorded is None:
                        raise Stale  # a freeze record, or anything but a paper or an issue, changed
                    digest = self.cache.file_digest(_read_bytes(os.path.join(folder, name)))
                    if digest == recorded:  # touched, not changed: its stat is recorded again
                        stat = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                        files.set(kind, name, stat, now, digest)
                        self.touched = True
                    else:
                        changed.append(f"{kind}/{name}")
            except OSError:  # gone
                raise Stale from None
            finally:
                os.close(fd)
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
        return fresh

    def _cached(self, kind: str, name: str, path: Path | None = None) -> Any:
        """What reading an unchanged file gave, from the content cache, as the index knows it."""
        found = self.cache.lookup(os.path.join(self.folders[kind], name), path)
        recorded = self.index["files"].digest(kind, name)
        if found is None or recorded is None or found[1] != recorded or found[2]:
            raise Stale
        return found[0]

    def _excerpts(
        self, fresh: dict[str, Paper | Issue], memo: Memo, stored: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """The memo a full build would keep now, and whether an index shows a different excerpt.

        A full build keeps the excerpt of every published issue's introduction; the index
        records which each issue's is, so only the edited issues' are worked out.
        """
        excerpts: dict[str, str] = self.index["excerpts"]
        kept = dict(stored)
        replaced = set()
        index_changed = False
        for key, new in fresh.items():
            old = self.before[key]
            if not isinstance(new, Issue) or new.slug not in excerpts or old.intro == new.intro:
                continue
            replaced.add(excerpts[new.slug])
            excerpts[new.slug] = Memo.key("excerpt", new.intro)
            self.index["journal"]["excerpts"][new.slug] = excerpts[new.slug]
            shown_old = self._excerpt(memo, old.intro)
            shown_new = self._excerpt(memo, new.intro)
            if shown_new is not None:
                kept[excerpts[new.slug]] = shown_new
            index_changed = index_changed or shown_old != shown_new
        for key in replaced - set(excerpts.values()):
            kept.pop(key, None)
        return kept, index_changed

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
        )

    def _pages(self, site: IndexedSite, fresh: dict[str, Paper | Issue], index_changed: bool) -> list[Page]:
        """The pages that show an edited file: keyed, and rendered when their key changed."""
        issues: set[str] = set()
        papers: set[str] = set()
        for obj in fresh.values():
            if isinstance(obj, Issue) and obj.slug in site.ids_of:
                issues.add(obj.slug)
            elif isinstance(obj, Paper) and obj.id in site.papers:
                papers.add(obj.id)
                issues.update(i.slug for i in site.featured[obj.id])
        pages = feed_pages(site, issues) if issues else []
        if index_changed:
            pages += site.index_pages()
        for n, slug in enumerate(site.slugs):
            if slug in issues:
                pages += [site.issue_version_page(v, n) for v in site.languages.versions[slug]]
        pages += [site.paper_entry(pid) for pid in sorted(papers)]
        tags = sorted({tag for pid in papers for tag in site.papers[pid].tags})
        pages += [site.tag_entry(tag) for tag in tags]
        return pages

    def _save(self, manifest: bytes) -> None:
        self.index["manifest"] = hashlib.sha256(manifest).hexdigest()
        save_journal(self.path, self.index)


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None
