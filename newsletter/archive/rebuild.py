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
import io
import json
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from newsletter.archive.feeds import feed_pages
from newsletter.archive.keys import Memo, fingerprint
from newsletter.archive.languages import SiteLanguages, Version
from newsletter.archive.pages import SitePages, chrome_key
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
from newsletter.config import Settings
from newsletter.content.cache import RACY_NS, ContentCache
from newsletter.content.issues import Issue
from newsletter.content.library import load_library, read_content
from newsletter.content.papers import Paper
from newsletter.content.translations import is_translation
from newsletter.errors import Problem
from newsletter.mail.render import excerpt

__all__ = ["INDEX_DIR", "build_archive", "index_path"]

INDEX_DIR = "cache/archive"  # under paths.build
INDEX_VERSION = 1
PAPERS, ISSUES = "papers", "issues"  # the content folders, as the index names them

# What other pages show of a paper, or decide from it (which issue features it, the order
# of a tag's papers): an edit to any of these re-keys every page.
PAPER_SHAPE = ("id", "title", "tags", "published", "upvotes", "rank", "code")
# An issue's fields that only its own pages, its feed entries and the index's excerpt show.
ISSUE_CONTENT = ("intro", "preheader")


class _NothingUnpickler(pickle.Unpickler):
    """The index is plain data: no class at all may be unpickled."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the archive's index")


class Stale(Exception):
    """The index cannot vouch for the site: build it the full, keyed way."""


def index_path(settings: Settings, out: Path) -> Path:
    """The index of the site built into `out`."""
    name = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return settings.build_dir / INDEX_DIR / f"{name}.pickle"


def build_archive(settings: Settings, out: Path | None = None) -> BuildReport:
    """Build the archive into `out` (default settings.site_dir): quickly when the index allows, else in full."""
    out = Path(out) if out is not None else settings.site_dir
    try:
        return _QuickBuild(settings, out).run()
    except Stale:
        pass
    started = time.time_ns()
    cache = ContentCache.for_settings(settings)
    library = load_library(settings, cache=cache)
    report = build_site(library, out)
    _write_index(settings, out, cache, report.site, report.total, started)
    return report


# ---------------------------------------------------------------------------
# The index


def _inputs(settings: Settings, salt: str) -> str:
    """What every page depends on besides the content: code, templates, catalogues, settings."""
    return fingerprint(INDEX_VERSION, chrome_key(settings), salt, repr(settings))


def _listing(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _content(folder: Path, name: str) -> bool:
    """A paper or issue file, as the library lists them (not a translation `<stem>.<lang>.md`)."""
    if not name.endswith(".md") or name.startswith("."):
        return False
    return "." not in name[:-3] or not is_translation(folder / name)


def _write_index(
    settings: Settings, out: Path, cache: ContentCache, site: SitePages, pages: int, started: int
) -> None:
    """Record what the full build into `out` was made from; no index when it cannot be followed."""
    path = index_path(settings, out)
    try:
        path.unlink(missing_ok=True)  # an index of an older build must not outlive it
    except OSError:
        return
    if site is None or site.languages.languages or site.library.translations.issues:
        return  # a site in several languages is always built in full
    files: dict[str, tuple] = {}
    for kind, folder in ((PAPERS, settings.papers_dir), (ISSUES, settings.issues_dir)):
        for name in _listing(folder):
            full = os.path.join(folder, name)
            entry = cache.used.get(full) if _content(folder, name) else None
            if entry is not None:
                if entry[4]:
                    return  # a problem or warning: the full build reports them every time
                files[f"{kind}/{name}"] = (*entry[0], entry[1], entry[2])
            elif name.endswith(".md") and not name.startswith("."):
                return  # a translation, or a file read without the cache
            else:
                stat = _stat(full)  # a freeze record, or anything else: it must stay as it is
                if stat is None:
                    return
                files[f"{kind}/{name}"] = (*stat, started, None)
    try:
        manifest = (out / MANIFEST).read_bytes()
    except OSError:
        return
    papers_dir = str(settings.papers_dir)
    payload = {
        "version": INDEX_VERSION,
        "out": str(out.resolve()),
        "inputs": _inputs(settings, cache.salt),
        "manifest": hashlib.sha256(manifest).hexdigest(),
        "chrome": site.chrome,
        "files": files,
        "papers_of": {
            slug: tuple(p.id for p in site.papers_of[slug]) for slug in (i.slug for i in site.issues)
        },
        "tags": {tag: tuple(p.id for p in papers) for tag, papers in site.tags.items()},
        # a paper's fingerprint is its file's digest unless it was read without the cache
        "paper_fp": {
            pid: fp
            for pid, fp in site.paper_fp.items()
            if cache.digest(Path(os.path.join(papers_dir, f"{pid}.md"))) != fp
        },
        "issue_fp": dict(site.issue_fp),
        "issue_tags": {i.slug: tuple(site.issue_tags(i)) for i in site.issues},
        "pages": pages,
    }
    _save_index(path, payload)


def _save_index(path: Path, payload: dict[str, Any]) -> None:
    from newsletter.atomic_files import replace_file

    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    except OSError:
        pass  # a read-only checkout builds in full every time


def _load_index(path: Path) -> dict[str, Any]:
    try:
        check, _, body = path.read_bytes().partition(b"\n")
        if check != hashlib.sha256(body).hexdigest().encode():
            raise Stale
        data = _NothingUnpickler(io.BytesIO(body)).load()
    except (OSError, Exception) as exc:  # missing, damaged or tampered
        raise Stale from exc
    shapes = {
        "version": int,
        "out": str,
        "inputs": str,
        "manifest": str,
        "chrome": str,
        "files": dict,
        "papers_of": dict,
        "tags": dict,
        "paper_fp": dict,
        "issue_fp": dict,
        "issue_tags": dict,
        "pages": int,
    }
    if not (
        type(data) is dict
        and all(type(data.get(k)) is t for k, t in shapes.items())
        and data["version"] == INDEX_VERSION
    ):
        raise Stale
    return data


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


class _Lazy(Mapping):
    """A mapping whose keys are known and whose values are made on first use (then kept)."""

    def __init__(self, keys: Iterable, make: Callable[[Any], Any]) -> None:
        self._keys = dict.fromkeys(keys)
        self._made: dict[Any, Any] = {}
        self._make = make

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._made[key]
        except KeyError:
            if key not in self._keys:
                raise
        value = self._made[key] = self._make(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class _Whole(Mapping):
    """A mapping made whole on first use: most rebuilds never ask."""

    def __init__(self, make: Callable[[], dict]) -> None:
        self._make = make
        self._made: dict | None = None

    @property
    def made(self) -> dict:
        if self._made is None:
            self._made = self._make()
        return self._made

    def __getitem__(self, key: Any) -> Any:
        return self.made[key]

    def __contains__(self, key: object) -> bool:
        return key in self.made

    def __iter__(self) -> Iterator:
        return iter(self.made)

    def __len__(self) -> int:
        return len(self.made)


def _featured(issues: list[Issue], papers_of: dict[str, tuple]) -> dict[str, list[Issue]]:
    """Paper id -> the published issues featuring it, oldest first (as `SitePages.featured`)."""
    featured: dict[str, list[Issue]] = {}
    for issue in issues:
        for pid in papers_of[issue.slug]:
            featured.setdefault(pid, []).append(issue)
    return featured


class _Papers(Sequence):
    """Papers named by their ids, each looked up when first used: its length costs no lookup."""

    def __init__(self, ids: tuple[str, ...], papers: Mapping[str, Paper]) -> None:
        self._ids = ids
        self._papers = papers

    def __getitem__(self, n: Any) -> Any:
        if isinstance(n, slice):
            return [self._papers[pid] for pid in self._ids[n]]
        return self._papers[self._ids[n]]

    def __len__(self) -> int:
        return len(self._ids)


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
        self.index = _load_index(self.path)
        self.cache = ContentCache.for_settings(settings)
        if self.index["out"] != str(out.resolve()) or self.index["inputs"] != _inputs(
            settings, self.cache.salt
        ):
            raise Stale
        self.folders = {PAPERS: settings.papers_dir, ISSUES: settings.issues_dir}
        self.touched = False  # files whose stat changed but not their bytes

    def run(self) -> BuildReport:
        try:
            manifest_bytes = (self.out / MANIFEST).read_bytes()
        except OSError:
            raise Stale from None
        if hashlib.sha256(manifest_bytes).hexdigest() != self.index["manifest"]:
            raise Stale
        files = self.index["files"]
        changed = self._changed(files)
        report = BuildReport(out=self.out)
        if not changed:
            report.unchanged = self.index["pages"]
            if self.touched:
                self._save(manifest_bytes)
            return report
        fresh = self._read_changed(changed)
        manifest = _ManifestText(manifest_bytes)
        stored_memo = manifest.memo()
        memo = Memo({k: v for k, v in stored_memo.items() if isinstance(v, str)})
        site = self._site(fresh, memo)
        site.env.bytecode_cache = _compiled_templates(self.settings.build_dir / COMPILED_TEMPLATES)
        records: dict[str, dict[str, Any]] = {}
        for page in self._pages(site, fresh):
            before = manifest.record(page.path)
            record = _write_page(page, str(self.out), before, report)
            if record is not before:
                records[page.path] = record
        for issue in site.issues:  # what a full build keeps: the excerpt of every issue the index lists
            if issue.intro:
                memo.get("excerpt", issue.intro, lambda text=issue.intro: excerpt(text)[0])
        site.keep_memo()
        site.fragments.save()
        kept = memo.kept()
        report.unchanged = self.index["pages"] - len(report.written)
        if records or kept != stored_memo:
            manifest_bytes = manifest.patched(records, kept)
            _write_atomic(self.out / MANIFEST, manifest_bytes)
        self.cache.save(complete=False)
        for obj in fresh.values():
            if isinstance(obj, Issue) and obj.slug in self.index["issue_fp"]:
                self.index["issue_fp"][obj.slug] = site.issue_fp[obj.slug]
        self._save(manifest_bytes)
        return report

    def _changed(self, files: dict[str, tuple]) -> list[str]:
        """The content files whose bytes changed since the index was written ('papers/<name>')."""
        changed = []
        seen = 0
        now = time.time_ns()
        for kind, folder in self.folders.items():
            try:
                names = os.listdir(folder)
                fd = os.open(folder, os.O_RDONLY)
            except OSError:
                raise Stale from None
            try:
                for name in names:  # 20,000 stats: the loop is kept tight
                    recorded = files.get(kind + "/" + name)
                    if recorded is None:
                        raise Stale  # a new file
                    seen += 1
                    st = os.stat(name, dir_fd=fd)
                    if (
                        st.st_mtime_ns == recorded[1]
                        and st.st_size == recorded[0]
                        and st.st_ctime_ns == recorded[2]
                        and st.st_ino == recorded[3]
                        and max(st.st_mtime_ns, st.st_ctime_ns) + RACY_NS < recorded[4]
                    ):
                        continue
                    if recorded[5] is None:
                        raise Stale  # a freeze record, or anything but a paper or an issue, changed
                    key = kind + "/" + name
                    digest = self.cache.file_digest(_read_bytes(os.path.join(folder, name)))
                    if digest == recorded[5]:  # touched, not changed: its stat is recorded again
                        files[key] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, now, digest)
                        self.touched = True
                    else:
                        changed.append(key)
            except OSError:
                raise Stale from None
            finally:
                os.close(fd)
        if seen != len(files):
            raise Stale  # a file was removed
        return sorted(changed)

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
            digest = self.cache.digest(path)
            entry = self.cache.used.get(str(path))
            if digest is None or entry is None:
                raise Stale
            self.index["files"][key] = (*entry[0], entry[1], digest)
        return fresh

    def _cached(self, kind: str, name: str, path: Path | None = None) -> Any:
        """What reading an unchanged file gave, from the content cache, as the index knows it."""
        found = self.cache.lookup(os.path.join(self.folders[kind], name), path)
        recorded = self.index["files"].get(f"{kind}/{name}")
        if found is None or recorded is None or found[1] != recorded[5] or found[2]:
            raise Stale
        return found[0]

    def _site(self, fresh: dict[str, Paper | Issue], memo: Memo) -> SitePages:
        """The site's pages as a full build lists them, every paper and issue looked up when first needed."""
        settings, index = self.settings, self.index
        issues: list[Issue] = []
        # paths made by listing the folder: parsing 2,000 path strings costs more
        children = {p.name: p for p in settings.issues_dir.iterdir()}
        for key in index["files"]:
            kind, name = key.split("/", 1)
            # the files the index holds a digest for are the papers and issues
            if kind == ISSUES and index["files"][key][5] is not None:
                # An unchanged issue comes without its freeze record (which did not change):
                # its fingerprint is the index's, and what selection made of it is too.
                issue = fresh[key] if key in fresh else self._cached(ISSUES, name, children.get(name))
                if not isinstance(issue, Issue):
                    raise Stale
                issues.append(issue)
        issues.sort(key=lambda i: (i.date, i.number))
        fresh_papers = {obj.id: obj for obj in fresh.values() if isinstance(obj, Paper)}
        edited = {obj.slug for obj in fresh.values() if isinstance(obj, Issue)}
        published = [i for i in issues if i.published]
        return _IndexedSite(settings, index, published, fresh_papers, edited, memo, self._paper)

    def _paper(self, pid: str) -> Paper:
        paper = self._cached(PAPERS, f"{pid}.md")
        if not isinstance(paper, Paper) or paper.id != pid:
            raise Stale
        return paper

    def _pages(self, site: _IndexedSite, fresh: dict[str, Paper | Issue]) -> list:
        """The pages that show an edited file: keyed, and rendered when their key changed."""
        issues: set[str] = set()
        papers: set[str] = set()
        for obj in fresh.values():
            if isinstance(obj, Issue) and obj.slug in site.versions_of:
                issues.add(obj.slug)
            elif isinstance(obj, Paper) and obj.id in site.papers:
                papers.add(obj.id)
                issues.update(i.slug for i in site.featured[obj.id])
        if not issues and not papers:
            return []
        pages = feed_pages(site, issues)
        if any(isinstance(obj, Issue) for obj in fresh.values()):
            pages += site.index_pages()
        for n, issue in enumerate(site.issues):
            if issue.slug in issues:
                pages += [site.issue_version_page(v, n) for v in site.languages.versions[issue.slug]]
        pages += [site.paper_entry(pid) for pid in sorted(papers)]
        tags = sorted({tag for pid in papers for tag in site.papers[pid].tags})
        pages += [site.tag_entry(tag) for tag in tags]
        return pages

    def _save(self, manifest: bytes) -> None:
        self.index["manifest"] = hashlib.sha256(manifest).hexdigest()
        _save_index(self.path, self.index)


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


class _IndexedSite(SitePages):
    """`SitePages` made from the index: the structure as recorded, papers looked up when a page needs them."""

    def __init__(
        self,
        settings: Settings,
        index: dict[str, Any],
        issues: list[Issue],
        fresh: dict[str, Paper],
        edited: set[str],
        memo: Memo,
        paper: Callable[[str], Paper],
    ) -> None:
        from newsletter.archive.keys import renderer_version
        from newsletter.archive.pages import CSS_OUTPUT, CSS_SOURCE
        from newsletter.content.cache import FragmentCache

        self.library = None
        self.settings = settings
        self.memo = memo
        self.fragments = FragmentCache.for_settings(settings, renderer_version)
        self.env = self._environment()
        self._chrome = {}
        self.issues = issues
        papers_of: dict[str, tuple] = index["papers_of"]
        if [i.slug for i in issues] != list(papers_of):
            raise Stale  # the published issues are not the ones indexed
        self.versions_of = papers_of
        self.papers = _Lazy(
            (pid for pids in papers_of.values() for pid in pids),
            lambda pid: fresh[pid] if pid in fresh else paper(pid),
        )
        self.papers_of = _Lazy(papers_of, lambda slug: _Papers(papers_of[slug], self.papers))
        self.languages = _one_language(settings, issues, self.papers_of)
        self.version_at = _Lazy(
            (i.web_path for i in issues), lambda path: self.languages.versions[self._slug_at[path]][0]
        )
        self._slug_at = {i.web_path: i.slug for i in issues}
        self.featured = _Whole(lambda: _featured(issues, papers_of))
        tags: dict[str, tuple] = index["tags"]
        self.tags = _Lazy(tags, lambda tag: _Papers(tags[tag], self.papers))
        self.tag_paths = self._tag_paths(self.tags)
        self.css_source = self._read_template_file(CSS_SOURCE)
        self.css_path = CSS_OUTPUT.format(hash=hashlib.sha256(self.css_source).hexdigest()[:8])
        files, fps = index["files"], index["paper_fp"]
        self.paper_fp = _Lazy(
            self.papers, lambda pid: fps[pid] if pid in fps else files[f"{PAPERS}/{pid}.md"][5]
        )
        stored_fp = index["issue_fp"]
        by_slug = {i.slug: i for i in issues}
        self.issue_fp = _Lazy(
            by_slug, lambda slug: fingerprint(by_slug[slug]) if slug in edited else stored_fp[slug]
        )
        self._issue_tags = index["issue_tags"]
        for paper_id in fresh:
            if paper_id in fps:
                raise Stale  # a paper keyed by its fields: the index cannot follow it
        self._listed = {}
        self._featured_lines = {}
        self.chrome = index["chrome"]
        self._full = {}
        self._blocks = {}

    # What the index knows without looking a paper up: a page that does not show a paper
    # never reads it from the cache.

    def paper_count(self, issue: Issue) -> int:
        return len(self.versions_of[issue.slug])

    def issue_tags(self, issue: Issue) -> list[str]:
        return list(self._issue_tags[issue.slug])

    def issue_full(self, issue: Issue) -> str:
        found = self._full.get(issue.web_path)
        if found is None:  # as SitePages.issue_full for a site in one language
            papers = [self.paper_fp[pid] for pid in self.versions_of[issue.slug]]
            found = self._full[issue.web_path] = fingerprint(self.issue_fp[issue.slug], papers)
        return found

    def keep_memo(self) -> None:
        for issue in self.issues:
            self.memo.keep("excerpt", issue.intro)


def _one_language(settings: Settings, issues: list[Issue], papers_of: Mapping) -> SiteLanguages:
    """The languages of a site without translations: each issue its one version, one index."""
    languages = object.__new__(SiteLanguages)
    languages.settings = settings
    languages.default = settings.language
    by_slug = {i.slug: i for i in issues}
    languages.versions = _Lazy(by_slug, lambda slug: [Version(by_slug[slug], papers_of[slug])])
    languages.issues = issues
    languages.languages = []
    return languages
