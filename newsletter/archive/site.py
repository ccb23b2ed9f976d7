"""Building the archive site: which pages to render, which files to write, which to remove.

Only published issues appear anywhere. The build is deterministic (dates come from the
issues, never from the clock) and incremental: every output file is recorded in
`.newsletter-manifest.json` with its content hash and a key of the inputs it was made
from, so a rebuild renders only the pages whose inputs changed, writes only files whose
bytes changed, and removes only files an earlier build created. The pages themselves
are `newsletter.archive.pages` and `newsletter.archive.feeds`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.archive import ArchiveError
from newsletter.archive.crawlers import crawler_pages
from newsletter.archive.feeds import feed_pages
from newsletter.archive.pages import Memo, Page, SitePages
from newsletter.archive.workers import render_in_workers, workers
from newsletter.atomic_files import replace_file
from newsletter.content.library import Library

__all__ = ["MANIFEST", "ArchiveError", "BuildReport", "build_site"]

MANIFEST = ".newsletter-manifest.json"
MANIFEST_VERSION = 2  # 2: feed entries are no longer kept in the manifest
COMPILED_TEMPLATES = "cache/templates"  # under paths.build


@dataclass
class BuildReport:
    """What a build did: files written, left as they were, removed (paths relative to `out`)."""

    out: Path
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    folders: set[str] = field(default_factory=set, repr=False)  # made or found while writing
    site: Any = field(default=None, repr=False)  # the SitePages a full build listed (for its index)

    @property
    def total(self) -> int:
        return len(self.written) + self.unchanged


def _read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"version": MANIFEST_VERSION, "files": {}, "memo": {}}  # unreadable: rebuild everything
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return {"version": MANIFEST_VERSION, "files": {}, "memo": {}}
    return data


def _write_atomic(path: Path | str, data: bytes, folders: set[str] | None = None) -> None:
    """Write one site file whole; `folders` remembers the folders this build made or found.

    At 20,000 pages, asking the file system for the same folder before each file cost
    more than the writes; a folder removed behind the build's back makes the write fail
    with FileNotFoundError, and then it is made again.
    """
    folder = os.path.dirname(path)
    if folders is None or folder not in folders:
        _make_folder(folder)
        if folders is not None:
            folders.add(folder)
    try:
        replace_file(path, data, mode=0o644)  # the site is for a web server to read, whatever the umask
    except FileNotFoundError:
        if folders is None:
            raise
        os.makedirs(folder, exist_ok=True)
        replace_file(path, data, mode=0o644)


def _make_folder(folder: str) -> None:
    """`os.makedirs(folder, exist_ok=True)` in one system call when the parent exists (a page's folder)."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        if not os.path.isdir(folder):
            raise
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)


def _on_disk(path: str, record: dict[str, Any]) -> bool:
    try:
        return os.stat(path).st_size == record.get("size")
    except OSError:
        return False


def build_site(library: Library, out: Path | str | None = None) -> BuildReport:
    """Build the archive site into `out` (default settings.site_dir), writing only what changed."""
    out = Path(out) if out is not None else library.settings.site_dir
    with _collector_paused() as resume:
        return _build(library, out, resume)


@contextlib.contextmanager
def _collector_paused() -> Iterator[Callable[[], None]]:
    """No cyclic garbage collection while a build lists and keys its pages; a function to resume it.

    A build holds hundreds of thousands of long-lived objects (the library, the
    manifest's records, a key per page) and makes them faster than the collector's
    thresholds expect: each full collection walks all of them again, which cost about a
    quarter of a one-issue rebuild. The listing makes no garbage cycles; rendering does
    (Jinja's contexts), so the collector runs again then, with what exists so far frozen
    out of its walks.
    """
    enabled = gc.isenabled()
    gc.disable()

    def resume() -> None:
        gc.freeze()
        if enabled:
            gc.enable()

    try:
        yield resume
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
        else:
            gc.disable()


def _build(library: Library, out: Path, resume: Callable[[], None]) -> BuildReport:
    manifest = _open_manifest(out)
    files = manifest.get("files")
    old_files: dict[str, Any] = files if isinstance(files, dict) else {}
    stored_memo = manifest.get("memo")
    memo = Memo(
        {k: v for k, v in stored_memo.items() if isinstance(v, str)} if isinstance(stored_memo, dict) else {}
    )
    site = SitePages(library, memo)
    site.env.bytecode_cache = _compiled_templates(library.settings.build_dir / COMPILED_TEMPLATES)
    report = BuildReport(out=out)
    new_files: dict[str, dict[str, Any]] = {}
    folder = str(out)  # plain strings: at 20,000 pages, Path objects cost more than the checks
    pages = feed_pages(site) + crawler_pages(site) + site.pages()
    resume()
    try:
        _write_pages(site, pages, folder, old_files, report, new_files)
    except BaseException:
        # A template error or Ctrl-C halfway: record what is on disk now (the files written
        # so far and the earlier build's), so the next build knows the folder and its files
        # as its own instead of refusing a "non-empty folder it did not build".
        if report.written:
            _write_manifest(out, {**_own(old_files), **new_files}, {**memo.stored, **memo.kept()})
        raise
    site.keep_memo()
    # a build from nothing asked for every fragment the site needs: the others are stale
    site.fragments.save(prune=not old_files)
    # The manifest says what an earlier build may remove: only plain relative paths inside
    # the folder, whatever a hand-edited or hostile manifest claims.
    for path in sorted(_own({p: r for p, r in old_files.items() if p not in new_files})):
        target = out / path
        if target.is_file():
            target.unlink()
            report.removed.append(path)
        _remove_empty_parents(target.parent, out)
    kept = memo.kept()
    unchanged = (
        manifest.get("version") == MANIFEST_VERSION
        and old_files.keys() == new_files.keys()
        and all(new_files[path] is record for path, record in old_files.items())
        and kept == stored_memo
    )
    if not unchanged:  # nothing written, removed or re-keyed: the manifest stays as it was
        _write_manifest(out, new_files, kept)
    report.site = site
    return report


def _write_pages(
    site: SitePages,
    pages: list[Page],
    out: str,
    old_files: dict[str, Any],
    report: BuildReport,
    new_files: dict[str, dict[str, Any]],
) -> None:
    """Render and write every page whose key changed, in worker processes when there are many."""
    todo = []
    for n, page in enumerate(pages):
        before = old_files.get(page.path)
        if _unchanged(page, os.path.join(out, page.path), before):
            report.unchanged += 1
            new_files[page.path] = before
        else:
            todo.append(n)
    count = workers(len(todo))
    if count == 1:
        for n in todo:
            page = pages[n]
            new_files[page.path] = _write_page(page, out, old_files.get(page.path), report)
        return
    done = sorted(render_in_workers(site, pages, todo, out, old_files, _write_page, count))
    for n, record, written in done:
        new_files[pages[n].path] = record
        if written:
            report.written.append(pages[n].path)
        else:
            report.unchanged += 1


def _unchanged(page: Page, target: str, before: Any) -> bool:
    """Whether the page's key and its file on disk are what the manifest recorded.

    A page the manifest does not list is not keyed here (a build into an empty folder):
    a lazy key is made when the page is written, in the worker that renders it.
    """
    if not (isinstance(before, dict) and before):
        return False
    key = page.keyed()
    return key is not None and before.get("key") == key and _on_disk(target, before)


def _own(files: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entries of a manifest's file list that can be this build's: safe paths, records that are mappings."""
    return {
        path: record for path, record in files.items() if _safe_site_path(path) and isinstance(record, dict)
    }


def _compiled_templates(folder: Path) -> Any:
    """Jinja's compiled templates, kept between builds (a one-page rebuild compiles none).

    Jinja checks each against its template's source and Python version before using it.
    Best effort: in a read-only checkout templates are compiled each time, as without it.
    """
    from jinja2 import FileSystemBytecodeCache

    class CompiledTemplates(FileSystemBytecodeCache):
        def dump_bytecode(self, bucket: Any) -> None:
            with contextlib.suppress(OSError):
                super().dump_bytecode(bucket)

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return CompiledTemplates(str(folder))


def _open_manifest(out: Path) -> dict[str, Any]:
    """The manifest of an earlier build into `out`; an empty one for a new or empty folder."""
    if out.exists() and not out.is_dir():
        raise ArchiveError(f"{out}: expected a folder for the site, found a file")
    manifest = _read_manifest(out)
    if manifest is not None:
        return manifest
    # Hidden entries (.git of a GitHub Pages checkout, .nojekyll, .DS_Store) are never
    # written by a build, so they do not make the folder someone else's.
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.is_dir() else []
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ArchiveError(
            f"{out}: not a folder newsletter built (no {MANIFEST}), and not empty: {shown}\n\n"
            "The build will not overwrite files it did not make. Build into a new or empty folder "
            "with --out DIR, or move these files out of the way first."
        )
    return {"version": MANIFEST_VERSION, "files": {}, "memo": {}}


def _write_page(page: Page, out: str, before: Any, report: BuildReport) -> dict[str, Any]:
    """Render and write one page unless its key or its bytes say it is unchanged; its manifest record.

    An unchanged page gives back the very record it had (`build_site` checks by identity).
    """
    target = os.path.join(out, page.path)
    if not isinstance(before, dict):
        before = None
    key = page.keyed()
    if key is not None and before and before.get("key") == key and _on_disk(target, before):
        report.unchanged += 1
        return before
    content = page.render()
    data = content.encode("utf-8") if isinstance(content, str) else content
    sha = hashlib.sha256(data).hexdigest()
    record = {"sha256": sha, "size": len(data), "key": key}
    if before and before.get("sha256") == sha and _on_disk(target, before):
        report.unchanged += 1
        return before if before == record else record
    _write_atomic(target, data, report.folders)
    report.written.append(page.path)
    return record


def _write_manifest(out: Path, files: dict[str, Any], memo: dict[str, str]) -> None:
    manifest = {
        "version": MANIFEST_VERSION,
        "generator": "newsletter",
        "files": dict(sorted(files.items())),
        "memo": dict(sorted(memo.items())),
    }
    encoded = json.dumps(manifest, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    path = out / MANIFEST
    if not path.is_file() or path.read_bytes() != encoded:
        _write_atomic(path, encoded)


def _safe_site_path(path: object) -> bool:
    """A '/'-separated relative path with no '..', '.', empty or absolute part (a manifest entry)."""
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        return False
    parts = path.split("/")
    return (
        not (
            path.startswith("/") or re.match(r"^[A-Za-z]:", path) or any(p in ("", ".", "..") for p in parts)
        )
        and parts[-1] != MANIFEST
    )


def _remove_empty_parents(folder: Path, out: Path) -> None:
    out = out.resolve()
    folder = folder.resolve()
    while folder != out and out in folder.parents:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return
        folder = folder.parent


# ---------------------------------------------------------------------------
# Local preview
