"""Which papers an issue features: a pure function of the issue, the paper pool and the freezes.

A frozen issue (one already sent, see `newsletter.content.freeze`) features exactly the
papers its record lists. Every other issue's `select` rules run oldest issue first and
never pick a paper that a frozen issue or an earlier issue featured, so however many
papers arrive later, what readers got stays what the archive shows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

from newsletter.content.freeze import frozen_ids
from newsletter.content.issues import Issue, Selection
from newsletter.content.library import Library
from newsletter.content.papers import Paper
from newsletter.errors import Problem, ProblemsError


def select_papers(
    issue: Issue, pool: Mapping[str, Paper], featured_before: Iterable[str] = ()
) -> list[Paper]:
    """Pinned papers (`include`, in order) first, then the papers the `select` rules pick.

    Rules never pick a paper in `exclude`, a pinned one, one another issue featured
    (`featured_before`), or one published after the issue's date; only `include`
    repeats a paper. A frozen issue's papers are its record's, whatever the rules say.
    """
    if issue.frozen is not None:
        return [pool[pid] for pid in issue.frozen.papers if pid in pool]
    pinned = [pool[pid] for pid in dict.fromkeys(issue.include) if pid in pool]
    rules = issue.select
    if rules is None:
        return pinned
    skip = set(issue.exclude) | set(issue.include) | set(featured_before)
    tests = [keep for _, _, keep in _filters(issue)]
    chosen = [p for p in pool.values() if p.id not in skip and all(keep(p) for keep in tests)]
    chosen.sort(key=_sort_key(rules.sort))
    if rules.limit is not None:
        chosen = chosen[: rules.limit]
    return pinned + chosen


def _filters(issue: Issue) -> list[tuple[str, str, Callable[[Paper], bool]]]:
    """The rules as (field, what a paper must be, test), in the order `empty_issue_problem` applies them."""
    rules = issue.select or Selection()
    day = issue.date
    steps: list[tuple[str, str, Callable[[Paper], bool]]] = [
        ("date", f"published on or before {day}", lambda p: p.published is None or p.published <= day)
    ]
    if rules.tags:
        tags = set(rules.tags)
        steps.append(("select.tags", f"tagged {list(rules.tags)}", lambda p: bool(tags & set(p.tags))))
    if rules.since:
        since = rules.since
        steps.append(
            ("select.since", f"published since {since}", lambda p: bool(p.published and p.published >= since))
        )
    if rules.until:
        until = rules.until
        steps.append(
            ("select.until", f"published until {until}", lambda p: bool(p.published and p.published <= until))
        )
    if rules.min_upvotes is not None:
        least = rules.min_upvotes
        steps.append(("select.min_upvotes", f"with {least}+ upvotes", lambda p: (p.upvotes or 0) >= least))
    if rules.has_code is not None:
        code = rules.has_code
        steps.append(
            ("select.has_code", "with code" if code else "without code", lambda p: bool(p.code) == code)
        )
    return steps


def _sort_key(sort: str):
    """Best first; ties broken by id so the order is stable across runs."""
    if sort == "upvotes":
        return lambda p: (-(p.upvotes or 0), p.id)
    if sort == "published":
        return lambda p: (-(p.published.toordinal() if p.published else 0), p.id)
    if sort == "title":
        return lambda p: (p.title.casefold(), p.id)
    return lambda p: p.id


def plan(library: Library) -> dict[str, list[Paper]]:
    """Every issue's papers, oldest issue first; rules skip what frozen and earlier issues featured."""
    featured = frozen_ids(library.issues)
    result: dict[str, list[Paper]] = {}
    for issue in library.issues:  # already oldest first
        papers = select_papers(issue, library.papers, featured)
        result[issue.slug] = papers
        featured.update(p.id for p in papers)
    return result


def papers_for(library: Library, issue: Issue) -> list[Paper]:
    """The issue's papers; none at all is an error that names the rule that matched nothing."""
    papers = plan(library)[issue.slug]
    if not papers:
        raise ProblemsError([empty_issue_problem(library, issue)])
    return papers


def empty_issue_problem(library: Library, issue: Issue) -> Problem:
    """Why `issue` has no papers, as the problem `check`, `build` and `send` report."""
    where = _relative(issue, library)
    if issue.frozen is not None:
        return Problem(where, "papers", "its freeze record lists no paper that exists")
    if issue.select is None:
        return Problem(where, "include", "lists no paper, and there are no 'select' rules to pick any")
    planned = plan(library)
    taken = frozen_ids(library.issues)
    for earlier in library.issues:
        if earlier.slug == issue.slug:
            break
        taken |= {p.id for p in planned[earlier.slug]}
    left = [p for p in library.papers.values() if p.id not in set(issue.exclude) | set(issue.include)]
    if not left:
        return Problem(where, "exclude", "leaves no paper for the rules to pick")
    steps = _filters(issue)
    steps.insert(1, ("select", "not featured by another issue", lambda p: p.id not in taken))
    for field, wanted, keep in steps:
        kept = [p for p in left if keep(p)]
        if not kept:
            return Problem(
                where, field, f"matched nothing: no paper {wanted} among the {len(left)} the other rules left"
            )
        left = kept
    return Problem(where, "select", "the rules matched no paper")


def _relative(issue: Issue, library: Library) -> str:
    try:
        return str(issue.path.relative_to(library.settings.root))
    except ValueError:
        return str(issue.path)


def rules_would_pick(library: Library, issue: Issue) -> list[Paper]:
    """What the issue's own rules pick today, as if it were not frozen (for `issue refreeze`)."""
    thawed = [dataclasses.replace(i, frozen=None) if i.slug == issue.slug else i for i in library.issues]
    return plan(dataclasses.replace(library, issues=thawed))[issue.slug]
