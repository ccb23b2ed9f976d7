"""Selection: pinned papers first, then what the rules pick; never a paper an earlier issue featured."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.content.freeze import Freeze
from newsletter.content.front_matter import closest, edit_distance
from newsletter.content.issues import Issue, Selection
from newsletter.content.library import Library, load_library
from newsletter.content.papers import Paper
from newsletter.content.selection import papers_for, plan, rules_would_pick, select_papers
from tests.support.project import REPO


def paper(
    pid: str, *, published: str | None = None, upvotes: int | None = None, tags=(), code=None, title=None
):
    return Paper(
        id=pid,
        title=title or pid.upper(),
        abstract="Abstract.",
        path=Path(f"papers/{pid}.md"),
        published=dt.date.fromisoformat(published) if published else None,
        upvotes=upvotes,
        tags=tuple(tags),
        code=code,
    )


POOL = {
    p.id: p
    for p in [
        paper("a", published="2024-01-01", upvotes=5, tags=["nlp"], title="zeta"),
        paper(
            "b",
            published="2024-01-05",
            upvotes=50,
            tags=["nlp", "arabic"],
            code="https://x.org/b",
            title="Alpha",
        ),
        paper("c", published="2024-01-10", upvotes=20, tags=["speech"], title="beta"),
        paper(
            "d", published="2024-01-03", upvotes=None, tags=["arabic"], code="https://x.org/d", title="Gamma"
        ),
        paper("e", published=None, upvotes=50, tags=["nlp"], title="delta"),
    ]
}


def issue(*, include=(), exclude=(), number=1, date="2024-02-01", **rules) -> Issue:
    return Issue(
        slug=f"{date}-x{number}",
        path=Path(f"issues/{date}-x{number}.md"),
        title="T",
        subject="S",
        date=dt.date.fromisoformat(date),
        number=number,
        intro="",
        language="en",
        include=tuple(include),
        exclude=tuple(exclude),
        **({"select": Selection(**rules)} if rules else {}),  # no rules: only `include`
    )


def ids(papers) -> list[str]:
    return [p.id for p in papers]


def test_pinned_only_in_their_order_unknown_ids_dropped():
    assert ids(select_papers(issue(include=["d", "a", "zz", "d"]), POOL)) == ["d", "a"]


def test_pinned_first_then_rules_never_repeating_a_pinned_one():
    chosen = select_papers(issue(include=["c", "b"], sort="upvotes"), POOL)
    # rules pick everything else: e (50, ties with b broken by id), a (5), d (None -> 0)
    assert ids(chosen) == ["c", "b", "e", "a", "d"]


def test_tags_match_any():
    assert ids(select_papers(issue(tags=("arabic", "speech"), sort="id"), POOL)) == ["b", "c", "d"]


def test_since_until_inclusive_and_undated_papers_excluded():
    chosen = select_papers(issue(since=dt.date(2024, 1, 3), until=dt.date(2024, 1, 5)), POOL)
    assert ids(chosen) == ["b", "d"]  # newest first
    assert "e" not in ids(select_papers(issue(since=dt.date(2000, 1, 1)), POOL))


def test_min_upvotes_treats_missing_as_zero():
    assert ids(select_papers(issue(min_upvotes=20, sort="id"), POOL)) == ["b", "c", "e"]
    assert ids(select_papers(issue(min_upvotes=0, sort="id"), POOL)) == ["a", "b", "c", "d", "e"]


def test_has_code_true_and_false():
    assert ids(select_papers(issue(has_code=True, sort="id"), POOL)) == ["b", "d"]
    assert ids(select_papers(issue(has_code=False, sort="id"), POOL)) == ["a", "c", "e"]


def test_sort_orders():
    assert ids(select_papers(issue(sort="upvotes"), POOL)) == ["b", "e", "c", "a", "d"]
    assert ids(select_papers(issue(sort="published", min_upvotes=0), POOL)) == ["c", "b", "d", "a", "e"]
    assert ids(select_papers(issue(sort="title"), POOL)) == ["b", "c", "e", "d", "a"]  # case-insensitive


def test_limit_applies_to_rules_not_to_pinned():
    chosen = select_papers(issue(include=["a", "d"], sort="upvotes", limit=2), POOL)
    assert ids(chosen) == ["a", "d", "b", "e"]


def test_exclude_beats_rules_but_not_include():
    assert ids(select_papers(issue(exclude=["b", "c"], sort="id"), POOL)) == ["a", "d", "e"]
    assert ids(select_papers(issue(include=["b"], exclude=["b"], tags=("nlp",), sort="id"), POOL)) == [
        "b",
        "a",
        "e",
    ]


def test_featured_before_is_skipped_by_rules_but_kept_when_included():
    rules = {"tags": ("nlp",), "sort": "id"}
    assert ids(select_papers(issue(**rules), POOL, featured_before=["a", "b"])) == ["e"]
    assert ids(select_papers(issue(include=["a"], **rules), POOL, featured_before=["a", "b"])) == ["a", "e"]


def test_plan_passes_what_earlier_issues_featured():
    first = issue(number=1, date="2024-02-01", tags=("nlp",), sort="id", limit=2)
    second = issue(number=2, date="2024-02-08", tags=("nlp",), sort="id")
    third = issue(number=3, date="2024-02-15", include=["a"], tags=("nlp",), sort="id")
    library = Library(settings=load_settings(REPO), papers=POOL, issues=[first, second, third])
    assert {slug: ids(papers) for slug, papers in plan(library).items()} == {
        first.slug: ["a", "b"],
        second.slug: ["e"],
        third.slug: ["a"],  # rules find nothing new; the include repeats a paper on purpose
    }
    assert ids(papers_for(library, second)) == ["e"]


def test_selection_is_deterministic_with_ties():
    pool = {p.id: p for p in reversed(list(POOL.values()))}
    assert ids(select_papers(issue(sort="upvotes"), pool)) == ids(select_papers(issue(sort="upvotes"), POOL))


def test_plan_over_the_example_newsletter():
    library = load_library(load_settings(REPO))
    planned = plan(library)
    first, second, third = library.issues
    assert len(planned[first.slug]) == 45
    assert {p.id for p in planned[first.slug]} == set(library.papers)
    # the two surveys are pinned first, then everything else by title
    assert ids(planned[first.slug][:2]) == list(first.include)
    rest = planned[first.slug][2:]
    assert [p.title.casefold() for p in rest] == sorted(p.title.casefold() for p in rest)
    # later issues only include papers explicitly, in the order given
    assert ids(planned[second.slug]) == list(second.include)
    assert ids(planned[third.slug]) == list(third.include)


def test_an_issue_with_rules_after_the_example_gets_nothing_already_featured():
    library = load_library(load_settings(REPO))
    later = issue(number=9, date="2026-04-07", sort="title")
    extended = dataclasses.replace(library, issues=[*library.issues, later])
    assert plan(extended)[later.slug] == []


def test_sort_published_alone_is_a_rule_like_any_other_sort():
    """Regression: `select: {sort: published}` equalled Selection() and counted as no rules."""
    assert ids(select_papers(issue(sort="published"), POOL)) == ["c", "b", "d", "a", "e"]


def test_rules_of_an_earlier_issue_do_not_claim_later_papers():
    """Regression: a past issue's rules claimed papers published after its date."""
    early = issue(number=1, date="2024-01-06", tags=("nlp",), sort="id")
    late = issue(number=2, date="2024-02-01", tags=("nlp",), sort="id")
    pool = {**POOL, "f": paper("f", published="2024-01-20", tags=["nlp"])}
    library = Library(settings=load_settings(REPO), papers=pool, issues=[early, late])
    planned = plan(library)
    assert ids(planned[early.slug]) == ["a", "b", "e"]
    assert ids(planned[late.slug]) == ["f"]


def frozen(base: Issue, *pids: str) -> Issue:
    record = Freeze(
        papers=pids, subject="S", sent=dt.datetime(2024, 2, 1, tzinfo=dt.UTC), by="send", source_sha256=""
    )
    return dataclasses.replace(base, frozen=record)


def test_a_frozen_issue_features_its_record_whatever_its_rules_say():
    sent = frozen(issue(tags=("nlp",), sort="id"), "c", "a", "gone")
    assert ids(select_papers(sent, POOL)) == ["c", "a"]  # record order; a missing id is check's error


def test_no_issue_takes_a_frozen_issues_papers_not_even_an_earlier_one():
    earlier = issue(number=1, date="2024-02-01", sort="id")  # a draft older than the sent issue
    sent = frozen(issue(number=2, date="2024-02-08", sort="id"), "b", "e")
    library = Library(settings=load_settings(REPO), papers=POOL, issues=[earlier, sent])
    planned = plan(library)
    assert ids(planned[earlier.slug]) == ["a", "c", "d"]
    assert ids(planned[sent.slug]) == ["b", "e"]


def test_a_frozen_issue_never_gains_papers_however_many_arrive():
    sent = frozen(issue(number=1, tags=("nlp",), sort="id"), "a", "b")
    pool = {**POOL, **{f"n{i}": paper(f"n{i}", published="2024-01-01", tags=["nlp"]) for i in range(20)}}
    library = Library(settings=load_settings(REPO), papers=pool, issues=[sent])
    assert ids(plan(library)[sent.slug]) == ["a", "b"]
    assert len(rules_would_pick(library, sent)) == 23  # what refreeze would propose


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("stauts", "status"),
        ("tag", "tags"),
        ("limt", "limit"),
        ("subjcet", "subject"),
        ("colour", None),
        ("", None),
    ],
)
def test_closest_is_within_two_edits(word, expected):
    assert closest(word, ["status", "tags", "limit", "subject", "title"]) == expected


def test_edit_distance_counts_a_swap_as_one():
    assert edit_distance("stauts", "status", 2) == 1
    assert edit_distance("kitten", "sitting", 5) == 3
    assert edit_distance("abc", "abcdefgh", 2) == 3  # past the cap: cap + 1
