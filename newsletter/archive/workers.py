"""Rendering a many-page build in worker processes, one per core (like `sphinx -j auto`), with the same bytes as one process.

A full build renders 22,000 pages at 2,000 issues: about 1 ms of Jinja each, which one
core cannot do in the 20 s the build is given. A build with at least `PARALLEL_PAGES`
pages to render forks one worker per available core (fork: the workers start with the
parent's pages, templates and caches, nothing is pickled to them). Each renders and writes
its share of the pages and hands back, through a temporary file, the manifest records of
its pages and the fragments and memo entries it asked for, which the parent merges as if
it had rendered them itself: the site, the manifest and the caches are those of a build
in one process. The pages are cut into chunks, which the workers take from a pipe one at a
time until none is left (`chunks`): however the pages' costs were guessed and whatever else
the machine runs, the workers finish together. A chunk holds a run of issues whole (each
issue's page, the pages of the papers it is the first to feature, whose blocks they reuse
(`SitePages._paper_block`), and the feed pages carrying them); the costliest other pages
(tags, indexes) are taken first, each alone.

Where fork is missing (Windows), one core is all there is, or the process runs other
threads (a lock one of them holds would be copied held), the build stays in one process. A worker's error is raised in the parent; Ctrl-C stops the workers with it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from newsletter.archive.pages import Page, SitePages

__all__ = ["PARALLEL_PAGES", "chunks", "render_in_workers", "workers"]

PARALLEL_PAGES = 2000  # fewer pages than this to render: one process is quicker than forking
MAX_CHUNKS = 1024  # 4-byte numbers in a pipe: 4 KB, within any system's pipe buffer

Writer = Callable[[Page, str, Any, Any], dict[str, Any]]  # site._write_page


def workers(pages: int) -> int:
    """How many processes should render `pages` pages: one per core the build may use, else 1."""
    if pages < PARALLEL_PAGES or not hasattr(os, "fork") or threading.active_count() > 1:
        return 1  # forking a process with threads can copy a lock some thread holds
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, pages // (PARALLEL_PAGES // 2)))


def chunks(site: SitePages, pages: list[Page], todo: list[int], count: int) -> list[list[int]]:
    """The pages at `todo` (their positions in `pages`) in the chunks workers take, in the order they take them.

    An issue's page, the pages of the papers it is the first to feature and the feed
    pages carrying it go together (they share rendered blocks and fragments), in runs of
    as many issues as an archived feed page carries, short enough for each worker to take
    several. Tag pages and indexes (costlier, fewer) come first, each alone; cheap pages
    last, together.
    """
    position = {slug: n for n, slug in enumerate(site.slugs)}
    groups: dict[int, list[int]] = {}
    others: list[tuple[float, int]] = []
    for n in todo:
        path = pages[n].path
        group = None
        if path.startswith("issues/"):
            group = position.get(path.split("/")[1])
        elif path.startswith("papers/"):
            featured = site.featured.get(path.split("/")[1])
            group = position.get(featured[0].slug) if featured else None
        elif path in ("feed.xml", "feed.json"):  # with the newest issues, whose entries it carries
            group = max(len(site.slugs) - 1, 0)
        elif path.startswith("feeds/archive/"):  # archived page n carries issues from (n - 1) * size on
            number = path.removeprefix("feeds/archive/").split(".")[0]
            group = (int(number) - 1) * site.settings.feed_size if number.isdigit() else None
        if group is None:
            others.append((_cost(site, path), n))
        else:
            groups.setdefault(group, []).append(n)
    run = max(1, min(site.settings.feed_size, len(site.slugs) // (count * 8)))
    runs: dict[int, list[int]] = {}
    for group in sorted(groups):
        runs.setdefault(group // run, []).extend(groups[group])
    costly = [[n] for cost, n in sorted(others, reverse=True) if cost > 1]
    cheap = sorted(n for cost, n in others if cost <= 1)
    found = costly + [sorted(members) for _, members in sorted(runs.items())] + ([cheap] if cheap else [])
    if len(found) > MAX_CHUNKS:  # their numbers must fit in the pipe before any worker reads it
        step = -(-len(found) // MAX_CHUNKS)
        found = [
            sorted(n for chunk in found[k : k + step] for n in chunk) for k in range(0, len(found), step)
        ]
    return found


def _cost(site: SitePages, path: str) -> float:
    """About how many issue or paper pages rendering this page costs."""
    if path.startswith("tags/") and path != "tags/index.html":
        return 200.0  # a tag's page lists thousands of papers
    if path.endswith("index.html") and path.count("/") <= 1:
        return 100.0  # an index of every issue
    if path.endswith((".xml", ".json")):
        return 10.0
    return 1.0


def render_in_workers(
    site: SitePages,
    pages: list[Page],
    todo: list[int],
    out: str,
    old: dict[str, Any],
    write: Writer,
    count: int,
) -> list[tuple[int, dict[str, Any], bool]]:
    """Render and write the pages at `todo` in `count` processes: (position, manifest record, written) for each."""
    order = chunks(site, pages, todo, count)
    queue, feed = os.pipe()
    try:
        # every chunk's number before any worker starts: a worker that finds the pipe empty is done
        os.write(feed, b"".join(n.to_bytes(4, "little") for n in range(len(order))))
    finally:
        os.close(feed)
    children: dict[int, str] = {}
    results: list[tuple[int, dict[str, Any], bool]] = []
    try:
        for _ in range(count):
            handle, path = tempfile.mkstemp(prefix="newsletter-pages-")
            os.close(handle)
            pid = os.fork()
            if pid == 0:  # the worker: render, hand back, and leave without running the parent's exit code
                status = 0
                try:
                    _work(site, pages, order, queue, out, old, write, path)
                except BaseException:
                    status = 1
                finally:
                    os._exit(status)
            children[pid] = path
        for pid, path in list(children.items()):
            os.waitpid(pid, 0)
            del children[pid]
            results += _collect(site, path)
    finally:
        os.close(queue)
        for pid, path in children.items():  # an error or Ctrl-C: the others stop too
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError:
                pass
            _remove(path)
    return results


def _work(
    site: SitePages,
    pages: list[Page],
    order: list[list[int]],
    queue: int,
    out: str,
    old: dict,
    write: Writer,
    path: str,
) -> None:
    from newsletter.archive.site import BuildReport

    report = BuildReport(out=out)  # type: ignore[arg-type]
    done: list[tuple[int, dict[str, Any], bool]] = []
    try:
        # each read takes one whole number: they were all written before, 4 bytes each
        while taken := os.read(queue, 4):
            for n in order[int.from_bytes(taken, "little")]:
                page = pages[n]
                written = len(report.written)
                done.append((n, write(page, out, old.get(page.path), report), len(report.written) > written))
        answer: Any = ("done", done, list(site.fragments.used), site.fragments.new, site.memo.used)
    except Exception as exc:
        answer = ("error", exc, done)
    try:
        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an error that cannot be pickled: its words
        data = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}"), done))
    with open(path, "wb") as handle:
        handle.write(data)


def _collect(site: SitePages, path: str) -> list[tuple[int, dict[str, Any], bool]]:
    """What one worker handed back, merged into the parent's caches; its error raised."""
    try:
        with open(path, "rb") as handle:
            answer = pickle.load(handle)  # written by our own child a moment ago
    except (OSError, EOFError, pickle.UnpicklingError):
        raise RuntimeError("a worker rendering archive pages stopped without an answer") from None
    finally:
        _remove(path)
    if answer[0] == "error":
        raise answer[1]
    _, done, used, new, memo = answer
    site.fragments.merge(used, new)
    site.memo.used.update(memo)
    return done


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
