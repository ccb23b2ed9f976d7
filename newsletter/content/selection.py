"""Which papers an issue features: a pure function of the issue and the paper pool."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from newsletter.content.issues import Issue, Selection
from newsletter.content.library import Library
from newsletter.content.papers import Paper


def select_papers(
    issue: Issue, pool: Mapping[str, Paper], featured_before: Iterable[str] = ()
) -> list[Paper]:
    """Pinned papers (`include`, in order) first, then the papers the `select` rules pick.

    Rules never pick a paper in `exclude`, a pinned one, one an earlier issue
    featured (`featured_before`), or one published after the issue's date (so a past
    issue keeps its papers when new ones arrive); only `include` repeats a paper.
    """
    pinned = [pool[pid] for pid in dict.fromkeys(issue.include) if pid in pool]
    rules = issue.select
    if rules is None:
        return pinned
    skip = set(issue.exclude) | set(issue.include) | set(featured_before)
    chosen = [
        p
        for p in pool.values()
        if p.id not in skip and (p.published is None or p.published <= issue.date) and _matches(p, rules)
    ]
    chosen.sort(key=_sort_key(rules.sort))
    if rules.limit is not None:
        chosen = chosen[: rules.limit]
    return pinned + chosen


def _matches(paper: Paper, rules: Selection) -> bool:
    if rules.tags and not set(rules.tags) & set(paper.tags):
        return False
    if rules.since and (paper.published is None or paper.published < rules.since):
        return False
    if rules.until and (paper.published is None or paper.published > rules.until):
        return False
    if rules.min_upvotes is not None and (paper.upvotes or 0) < rules.min_upvotes:
        return False
    return rules.has_code is None or bool(paper.code) == rules.has_code


def _sort_key(sort: str):
    """Best first; ties broken by id so the order is stable across runs."""
    if sort == "upvotes":
        return lambda p: (-(p.upvotes or 0), p.id)
    if sort == "rank":  # the listing page's order; papers without a rank come last
        return lambda p: (p.rank is None, p.rank or 0, p.id)
    if sort == "published":
        return lambda p: (-(p.published.toordinal() if p.published else 0), p.id)
    if sort == "title":
        return lambda p: (p.title.casefold(), p.id)
    return lambda p: p.id


def plan(library: Library) -> dict[str, list[Paper]]:
    """Every issue's papers, oldest issue first, each excluding what earlier ones featured."""
    featured: set[str] = set()
    result: dict[str, list[Paper]] = {}
    for issue in library.issues:  # already oldest first
        papers = select_papers(issue, library.papers, featured)
        result[issue.slug] = papers
        featured.update(p.id for p in papers)
    return result


def papers_for(library: Library, issue: Issue) -> list[Paper]:
    return plan(library)[issue.slug]
