"""Frozen issues: what an issue was sent with stays its paper list, however many papers arrive."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from newsletter.archive.site import build_site
from newsletter.config import load_settings
from newsletter.content.freeze import (
    changed_since_frozen,
    freeze,
    freeze_path,
    freeze_published,
    require_sendable,
)
from newsletter.content.library import Library, load_library
from newsletter.content.selection import empty_issue_problem, papers_for, plan
from newsletter.errors import ContentError, ProblemsError
from tests.support.project import GOOD, copy_newsletter, edit, run

FIRST = "2024-01-10-first"
DRAFT = "2024-01-17-arabic"
SENT_AT = dt.datetime(2024, 1, 10, 8, 30, tzinfo=dt.UTC)


@pytest.fixture
def digest(tmp_path: Path) -> Path:
    return copy_newsletter(GOOD, tmp_path / "digest")


def load(root: Path) -> Library:
    return load_library(load_settings(root))


def ids(papers) -> list[str]:
    return [p.id for p in papers]


def add_paper(root: Path, pid: str, *, published: str, tags: str, title: str | None = None) -> None:
    (root / "papers" / f"{pid}.md").write_text(
        f"---\nid: {pid}\ntitle: {title or pid.title()}\npublished: {published}\ntags: {tags}\n---\n"
        f"Abstract of {pid}.\n",
        encoding="utf-8",
    )


def freeze_first(root: Path) -> list[str]:
    library = load(root)
    issue = library.issue(FIRST)
    papers = papers_for(library, issue)
    freeze(issue, papers, issue.subject, SENT_AT)
    return ids(papers)


def test_the_record_lists_papers_subject_time_and_file_hash(digest: Path) -> None:
    sent = freeze_first(digest)
    assert sent == ["2401.00001", "cjk-tokenizers", "arabic-dialects"]
    record = tomllib.loads((digest / "issues" / f"{FIRST}.sent.toml").read_text(encoding="utf-8"))
    assert record["papers"] == sent
    assert record["subject"] == "Test Digest #1 — transfer, dialects & tokenizers"
    assert record["sent"] == SENT_AT
    assert record["by"] == "send"
    assert len(record["source_sha256"]) == 64
    # the loader reads *.md only: the record is not an issue, and it is attached to its issue
    library = load(digest)
    assert [i.slug for i in library.issues] == [FIRST, DRAFT]
    assert library.issue(FIRST).frozen.papers == tuple(sent)


def test_freezing_again_keeps_the_first_record(digest: Path) -> None:
    freeze_first(digest)
    before = (digest / "issues" / f"{FIRST}.sent.toml").read_bytes()
    library = load(digest)
    issue = library.issue(FIRST)
    again = freeze(issue, [library.papers["cjk-tokenizers"]], "Other", SENT_AT + dt.timedelta(days=1))
    assert again.papers == ("2401.00001", "cjk-tokenizers", "arabic-dialects")
    assert (digest / "issues" / f"{FIRST}.sent.toml").read_bytes() == before


def test_later_papers_never_join_a_frozen_issue_nor_go_to_another(digest: Path) -> None:
    sent = freeze_first(digest)
    # matching the first issue's rules and published before it: unfrozen, it would join it
    add_paper(digest, "late-arabic", published="2024-01-01", tags="[arabic]")
    library = load(digest)
    assert ids(papers_for(library, library.issue(FIRST))) == sent
    # an issue whose rules match everything never takes what the frozen issue featured
    edit(digest / "issues" / f"{DRAFT}.md", "include: [arabic-dialects]", "select: {sort: id}")
    library = load(digest)
    assert ids(plan(library)[DRAFT]) == ["late-arabic"]


def test_an_unfrozen_issue_would_have_changed(digest: Path) -> None:
    # the same import without a freeze: the seam this record closes
    add_paper(digest, "late-arabic", published="2024-01-01", tags="[arabic]")
    library = load(digest)
    assert "late-arabic" in ids(papers_for(library, library.issue(FIRST)))


def test_corrections_change_the_page_not_the_papers_and_check_warns(digest: Path) -> None:
    freeze_first(digest)
    library = load(digest)
    assert not changed_since_frozen(library.issue(FIRST))
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome (corrected) to the")
    edit(digest / "issues" / f"{FIRST}.md", "tags: [arabic, tokenization]", "tags: [transfer]")
    library = load(digest)
    assert changed_since_frozen(library.issue(FIRST))
    build_site(library, digest / "site")
    page = (digest / "site" / "issues" / FIRST / "index.html").read_text(encoding="utf-8")
    assert "Welcome (corrected) to the" in page
    for title in ("Cross-Lingual Transfer", "Tokenizers for Chinese", "Dialect-Aware Pretraining"):
        assert title in page
    result = run(digest, "check", FIRST, "--no-spam-score")
    assert f"warn  {FIRST}.md changed since it was sent (2024-01-10 08:30 UTC)" in result.output
    assert f"issue refreeze {FIRST}" in result.output


def test_a_broken_record_and_a_missing_frozen_paper_are_errors(digest: Path) -> None:
    freeze_first(digest)
    record = digest / "issues" / f"{FIRST}.sent.toml"
    (digest / "papers" / "cjk-tokenizers.md").unlink()
    with pytest.raises(ProblemsError) as missing:
        load(digest)
    assert f"issues/{FIRST}.sent.toml: papers: unknown paper id 'cjk-tokenizers'" in str(missing.value)
    record.write_text("papers = [\n", encoding="utf-8")
    with pytest.raises(ProblemsError) as broken:
        load(digest)
    assert f"issues/{FIRST}.sent.toml: cannot read the freeze record" in str(broken.value)


def test_a_draft_is_not_sendable_and_says_how_to_publish(digest: Path) -> None:
    library = load(digest)
    require_sendable(library.issue(FIRST))
    with pytest.raises(ContentError) as refused:
        require_sendable(library.issue(DRAFT))
    message = refused.value.format_message()
    assert "status: draft" in message and "set 'status: published'" in message and "--test" in message


def test_publishing_freezes_published_issues_never_sent(digest: Path) -> None:
    library = load(digest)
    frozen = freeze_published(library.issues, plan(library), SENT_AT)
    assert [i.slug for i in frozen] == [FIRST]  # the draft is not published: left alone
    record = tomllib.loads(freeze_path(library.issue(FIRST).path).read_text(encoding="utf-8"))
    assert record["by"] == "archive publish"
    assert not freeze_path(library.issue(DRAFT).path).exists()
    assert freeze_published(load(digest).issues, plan(load(digest)), SENT_AT) == []  # once


@pytest.mark.parametrize(
    ("select", "field", "message"),
    [
        ("tags: [no-such-tag]", "select.tags", "no paper tagged ['no-such-tag'] among the"),
        ("min_upvotes: 1000", "select.min_upvotes", "no paper with 1000+ upvotes among the"),
        ("since: 2030-01-01", "select.since", "no paper published since 2030-01-01"),
    ],
)
def test_an_empty_issue_names_the_rule_that_matched_nothing(
    digest: Path, select: str, field: str, message: str
) -> None:
    edit(digest / "issues" / f"{FIRST}.md", "include: [2401.00001]\n", "")
    edit(digest / "issues" / f"{FIRST}.md", "  tags: [arabic, tokenization]", f"  {select}")
    library = load(digest)
    problem = empty_issue_problem(library, library.issue(FIRST))
    assert problem.field == field and message in problem.message
    for command in (["build", FIRST, "--out", str(digest / "out")], ["send", FIRST, "--dry-run"]):
        result = run(digest, *command)
        assert result.exit_code == 1, result.output
        assert f"Error: issues/{FIRST}.md: {field}: matched nothing" in result.output
    result = run(digest, "check", FIRST, "--no-spam-score")
    assert result.exit_code == 1
    assert f"FAIL  issues/{FIRST}.md: {field}: matched nothing" in result.output


def test_papers_featured_elsewhere_are_named_when_nothing_is_left(digest: Path) -> None:
    freeze_first(digest)
    edit(digest / "issues" / f"{DRAFT}.md", "include: [arabic-dialects]", "select: {tags: [arabic]}")
    library = load(digest)
    problem = empty_issue_problem(library, library.issue(DRAFT))
    assert (problem.field, "not featured by another issue" in problem.message) == ("select", True)


def test_refreeze_shows_the_change_and_records_it(digest: Path) -> None:
    freeze_first(digest)
    add_paper(digest, "late-arabic", published="2024-01-01", tags="[arabic]", title="Late Arabic")
    result = run(digest, "issue", "refreeze", FIRST, "--yes")
    assert result.exit_code == 0, result.output
    assert "  + late-arabic  Late Arabic" in result.output
    assert "3 papers frozen -> 4 papers by the rules now" in result.output
    library = load(digest)
    assert "late-arabic" in library.issue(FIRST).frozen.papers
    assert library.issue(FIRST).frozen.by == "issue refreeze"
    assert library.issue(FIRST).frozen.sent == SENT_AT  # when it was sent does not change
    again = run(digest, "issue", "refreeze", FIRST, "--yes")
    assert "nothing to do" in again.output


def test_refreeze_without_a_terminal_asks_for_yes(digest: Path) -> None:
    freeze_first(digest)
    add_paper(digest, "late-arabic", published="2024-01-01", tags="[arabic]")
    result = run(digest, "issue", "refreeze", FIRST)
    assert result.exit_code == 1 and "pass --yes" in result.output
    assert "late-arabic" not in load(digest).issue(FIRST).frozen.papers


def test_unfreeze_removes_the_record_and_the_rules_pick_again(digest: Path) -> None:
    freeze_first(digest)
    add_paper(digest, "late-arabic", published="2024-01-01", tags="[arabic]", title="Late Arabic")
    result = run(digest, "issue", "unfreeze", FIRST, "--yes")
    assert result.exit_code == 0, result.output
    assert "  + late-arabic  Late Arabic" in result.output
    assert not (digest / "issues" / f"{FIRST}.sent.toml").exists()
    library = load(digest)
    assert "late-arabic" in ids(papers_for(library, library.issue(FIRST)))
    not_frozen = run(digest, "issue", "unfreeze", FIRST, "--yes")
    assert not_frozen.exit_code == 1 and "not frozen" in not_frozen.output
