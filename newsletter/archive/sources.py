"""What a built site was made from, kept between builds: each content file's stat and digest, the site's structure, the manifest it goes with.

`newsletter.archive.rebuild` writes this index after every full build into a folder
(`<paths.build>/cache/archive/<hash of the site folder>.pickle`) and reads it to rebuild
quickly. It holds every entry of `papers/` and `issues/` (`source_files.SourceFiles`: stat, when it
was read, the content cache's digest of a paper or issue, the SHA-256 of any other file),
what the pages' keys were made from (each published issue's paper ids, each tag's paper
ids, the fingerprints of issues and of papers read without the cache, each issue's tags,
each version's excerpt's memo key), the words of every translation, which translations
each published issue has and which issues each language's feeds carry, the fingerprint of
everything else every page depends on (`site_inputs`) and the hash of the manifest. No
index is written for a site it cannot follow: a content file with a problem or a warning,
a stale translation, a translation or freeze record that changed while the build read it.
A quick rebuild leaves the index as it is and writes what it changed (a few files'
records, fingerprints, translations, the manifest's hash) to a journal beside it
(`.journal`), which the next one applies.

The index is only a copy, checked before use: unpickled with no class allowed (strings,
numbers, bytes, tuples, lists and dicts), it carries the hash of its own payload, and
anything missing, malformed or from another version raises `Stale`. The site's structure
is pickled apart inside it, and unpickled and checked only when a file changed (`Index`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
import sys
from pathlib import Path
from typing import Any

from newsletter.archive.keys import Memo, fingerprint
from newsletter.archive.pages import SitePages, chrome_key
from newsletter.archive.site import MANIFEST
from newsletter.archive.source_files import CACHED, PLAIN, SourceFiles, Stale
from newsletter.archive.translated import other_file, recorded_translations, well_formed
from newsletter.config import Settings
from newsletter.content.cache import ContentCache
from newsletter.content.freeze import FREEZE_SUFFIX
from newsletter.content.translations import is_translation

__all__ = [
    "INDEX_DIR",
    "ISSUES",
    "PAPERS",
    "Index",
    "index_path",
    "load_index",
    "save_index",
    "save_journal",
    "write_index",
]

INDEX_DIR = "cache/archive"  # under paths.build
INDEX_VERSION = 6  # 6: the structure apart; 5: stats apart from times read, racy files listed; 4: translations; 3: each folder's stat; 2: file records packed
PAPERS, ISSUES = "papers", "issues"  # the content folders, as the index names them


class _NothingUnpickler(pickle.Unpickler):
    """The index is plain data: no class at all may be unpickled."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the archive's index")


def index_path(settings: Settings, out: Path) -> Path:
    """The index of the site built into `out`."""
    name = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return settings.build_dir / INDEX_DIR / f"{name}.pickle"


def site_inputs(settings: Settings, salt: str) -> str:
    """What every page depends on besides the content: code, templates, catalogues, settings, Babel's CLDR data."""
    return fingerprint(
        INDEX_VERSION, sys.byteorder, chrome_key(settings), salt, repr(settings), _babel_release()
    )


def _babel_release() -> bytes:
    """Babel's `__init__.py`, which names its version (and so its CLDR data's), read without importing Babel.

    A rebuild that finds nothing changed would import it for this alone.
    """
    spec = importlib.util.find_spec("babel")
    try:
        return Path(spec.origin).read_bytes() if spec and spec.origin else b""
    except OSError:
        return b""  # nor can the pages be rendered: the full build says why


def _content(folder: Path, name: str) -> bool:
    """A paper or issue file, as the library lists them (not a translation `<stem>.<lang>.md`)."""
    if not name.endswith(".md") or name.startswith("."):
        return False
    return "." not in name[:-3] or not is_translation(folder / name)


def _source_files(
    settings: Settings,
    cache: ContentCache,
    started: int,
    folders: dict[str, tuple[int, int, int] | None],
    translations: dict[str, tuple],
    frozen: dict[Path, Any],
) -> SourceFiles | None:
    """Every entry of the content folders as the full build read it; None when one cannot be vouched for."""
    files = SourceFiles()
    for kind, folder in ((PAPERS, settings.papers_dir), (ISSUES, settings.issues_dir)):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return None
        stat = folders.get(kind)
        read = {os.path.basename(key) for key in cache.used if os.path.dirname(key) == str(folder)}
        if stat is None or not read <= set(names):
            return None  # a file read for the build is gone already: the next build lists again
        files.set_folder(kind, stat, started)
        for name in names:
            full = os.path.join(folder, name)
            entry = cache.used.get(full) if _content(folder, name) else None
            if entry is not None:
                if entry[4]:
                    return None  # a problem or warning: the full build reports them every time
                files.add(kind, name, entry[0], entry[1], entry[2], CACHED)
            elif f"{kind}/{name}" in translations:
                record = translations[f"{kind}/{name}"]
                files.add(kind, name, record[4], record[5], record[6], PLAIN)
            elif name.endswith(".md") and not name.startswith("."):
                return None  # a file read without the cache
            else:  # a freeze record, or anything else: it must stay as it is
                record = other_file(full, started, frozen)
                if record is None:
                    return None
                files.add(kind, name, *record, PLAIN)
    return files


def write_index(
    settings: Settings,
    out: Path,
    cache: ContentCache,
    site: SitePages,
    pages: int,
    started: int,
    folders: dict[str, tuple[int, int, int] | None],
) -> None:
    """Record what the full build into `out` was made from (`site`, its `pages`); none when it cannot be followed.

    `cache` read every paper and issue; `started`: when the build began (a file changed
    since counts as changed); `folders`: each content folder's `folder_stat` then.
    """
    path = index_path(settings, out)
    try:  # an index of an older build must not outlive it
        path.unlink(missing_ok=True)
        _journal(path).unlink(missing_ok=True)
    except OSError:
        return
    if site is None:
        return
    kinds = {
        ISSUES: (settings.issues_dir, site.library.translations.issues),
        PAPERS: (settings.papers_dir, site.library.translations.papers),
    }
    translations = recorded_translations(settings, started, kinds)
    if translations is None:
        return  # a stale translation (the build warned of it) or one that changed while it was read
    frozen = {i.path.with_name(i.path.stem + FREEZE_SUFFIX): i for i in site.library.issues}
    try:
        files = _source_files(settings, cache, started, folders, translations, frozen)
    except OverflowError:  # a time before 1970, which the packed numbers do not hold
        return
    if files is None:
        return
    try:
        manifest = (out / MANIFEST).read_bytes()
    except OSError:
        return
    papers_dir = str(settings.papers_dir)
    structure = {
        "chrome": site.chrome,
        "papers_of": {slug: tuple(p.id for p in site.papers_of[slug]) for slug in site.slugs},
        "tags": {tag: tuple(p.id for p in papers) for tag, papers in site.tags.items()},
        # a paper's fingerprint is its file's digest unless it was read without the cache
        "paper_fp": {
            pid: fp
            for pid, fp in site.paper_fp.items()
            if cache.digest(Path(os.path.join(papers_dir, f"{pid}.md"))) != fp
        },
        "issue_fp": dict(site.issue_fp),
        "issue_tags": {i.slug: tuple(site.issue_tags(i)) for i in site.issues},
        # every version an index shows (the memo keeps their excerpts), by its page
        "excerpts": {
            v.path: Memo.key("excerpt", v.issue.intro)
            for language in [settings.language, *site.languages.languages]
            for v in (site.languages.shown_in(i, language) for i in site.issues)
        },
        # the words of each translation: an unchanged one is never read again
        "translations": {key: record[:4] for key, record in translations.items()},
        "languages": tuple(site.languages.languages),
        "versions": {
            slug: tuple(v.issue.language for v in versions[1:])
            for slug, versions in site.languages.versions.items()
            if len(versions) > 1
        },
        "editions": {
            language: tuple(v.issue.slug for v in site.languages.issues_in(language))
            for language in site.languages.languages
        },
        # each language's name, as its language links show it (Babel takes 0.1 s per language)
        "names": {
            language: site.languages.name(language)
            for language in {
                settings.language,
                *site.languages.languages,
                *(v.issue.language for versions in site.languages.versions.values() for v in versions[1:]),
                *(
                    versions[0].issue.language
                    for versions in site.languages.versions.values()
                    if len(versions) > 1
                ),
            }
        },
    }
    payload = {
        "version": INDEX_VERSION,
        "out": str(out.resolve()),
        "inputs": site_inputs(settings, cache.salt),
        "manifest": hashlib.sha256(manifest).hexdigest(),
        "pages": pages,
        "files": files,
        # a rebuild that finds no file changed never unpickles the site's structure
        "structure": pickle.dumps(structure, protocol=pickle.HIGHEST_PROTOCOL),
    }
    save_index(path, payload)


def save_index(path: Path, index: dict[str, Any]) -> None:
    """Write an index whole, as `write_index` made it (best effort: a read-only checkout builds in full every time)."""
    try:
        _journal(path).unlink(missing_ok=True)
    except OSError:
        return
    _write(path, {**index, "files": index["files"].packed()})


def save_journal(path: Path, index: dict[str, Any]) -> None:
    """Write what changed since the index was written beside it: a few records, not the 3 MB of the index."""
    journal = index["journal"]
    _write(
        _journal(path),
        {
            "base": index["base"],
            "files": index["files"].changed,
            "issue_fp": journal["issue_fp"],
            "excerpts": journal["excerpts"],
            "translations": journal["translations"],
            "manifest": index["manifest"],
            "pages": index["pages"],
            "folders": index["files"].changed_folders,
        },
    )


def _journal(path: Path) -> Path:
    return path.with_suffix(".journal")


def _write(path: Path, data: dict[str, Any]) -> None:
    from newsletter.atomic_files import replace_file

    body = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    except OSError:
        pass


def _read(path: Path) -> tuple[Any, str]:
    """What a file `_write` wrote holds, and the hash of its payload."""
    try:
        check, _, body = path.read_bytes().partition(b"\n")
        digest = hashlib.sha256(body).hexdigest()
        if check != digest.encode():
            raise Stale
        return _NothingUnpickler(io.BytesIO(body)).load(), digest
    except Exception as exc:  # missing, damaged or tampered
        raise Stale from exc


_SHAPES = {  # what every rebuild reads
    "version": int,
    "out": str,
    "inputs": str,
    "manifest": str,
    "pages": int,
    "files": dict,
    "structure": bytes,
}
_STRUCTURE = {  # what a rebuild reads when a file changed (`Index`)
    "chrome": str,
    "papers_of": dict,
    "tags": dict,
    "paper_fp": dict,
    "issue_fp": dict,
    "issue_tags": dict,
    "excerpts": dict,
    "translations": dict,
    "languages": tuple,
    "versions": dict,
    "editions": dict,
    "names": dict,
}
_JOURNALED = ("issue_fp", "excerpts", "translations")  # parts of the structure a journal changes


class Index(dict):
    """An index as loaded: the files' records at once, the site's structure when first asked for.

    A rebuild that finds no file changed reads a fifth of the index: at 2,000 issues,
    unpickling and checking the structure (each issue's papers and tags, each tag's
    papers, the translations) cost as much as the rest of such a rebuild. The journal's
    changes to the structure wait in `index["journal"]` until then, and are checked then.
    """

    def __init__(self, data: dict[str, Any], structure: bytes) -> None:
        super().__init__(data)
        self._structure: bytes | None = structure

    def __missing__(self, key: str) -> Any:
        if key not in _STRUCTURE or self._structure is None:
            raise KeyError(key)
        structure, self._structure = _structure(self._structure, self["journal"]), None
        self.update(structure)
        return self[key]


def _structure(body: bytes, journal: dict[str, dict]) -> dict[str, Any]:
    """The site's structure in an index, with the journal's changes to it; `Stale` when malformed."""
    try:
        data = _NothingUnpickler(io.BytesIO(body)).load()
    except Exception as exc:
        raise Stale from exc
    if not (type(data) is dict and all(type(data.get(k)) is t for k, t in _STRUCTURE.items())):
        raise Stale
    if not well_formed(data["translations"]) or not all(type(v) is str for v in data["names"].values()):
        raise Stale
    for field in ("issue_fp", "excerpts"):
        if not all(type(k) is str and type(v) is str and k in data[field] for k, v in journal[field].items()):
            raise Stale
        data[field].update(journal[field])
    translations = journal["translations"]
    if not (well_formed(translations) and translations.keys() <= data["translations"].keys()):
        raise Stale
    data["translations"].update(translations)
    return data


def load_index(path: Path) -> Index:
    """The index at `path` with its journal applied, checked; `Stale` when it is missing, damaged, tampered with or from another version.

    The site's structure is unpickled and checked when first asked for (`Index`).
    """
    data, base = _read(path)
    if not (
        type(data) is dict
        and all(type(data.get(k)) is t for k, t in _SHAPES.items())
        and data["version"] == INDEX_VERSION
    ):
        raise Stale
    data["files"] = files = SourceFiles.unpacked(data["files"])
    data["base"] = base
    data["journal"] = {field: {} for field in _JOURNALED}
    index = Index({k: v for k, v in data.items() if k != "structure"}, data["structure"])
    try:
        journal, _ = _read(_journal(path))
    except Stale:
        return index  # none yet (or a damaged one, which a missing index record would catch)
    if not (type(journal) is dict and journal.get("base") == base):
        return index  # an older index's
    shapes = {
        "files": dict,
        "issue_fp": dict,
        "excerpts": dict,
        "translations": dict,
        "manifest": str,
        "pages": int,
        "folders": dict,
    }
    if not all(type(journal.get(k)) is t for k, t in shapes.items()):
        raise Stale
    for key, record in journal["files"].items():
        if not (type(key) is str and type(record) is tuple and len(record) == 3):
            raise Stale
        stat, read_ns, digest = record
        if not (type(stat) is tuple and len(stat) == 4 and type(read_ns) is int and type(digest) is str):
            raise Stale
        kind, _, name = key.partition("/")
        try:
            files.set(kind, name, stat, read_ns, digest)
        except (ValueError, OverflowError, TypeError) as exc:
            raise Stale from exc
    for kind, stat in journal["folders"].items():
        if not (kind in files.folders and type(stat) is tuple and all(type(n) is int for n in stat)):
            raise Stale
        files.set_folder(kind, stat[:3], stat[3])
    for field in _JOURNALED:  # checked and applied with the structure
        index["journal"][field] = journal[field]
    index["manifest"], index["pages"] = journal["manifest"], journal["pages"]
    return index
