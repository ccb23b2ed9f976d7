"""Curating without hand-editing YAML: `papers tag`, `papers note`, `papers list`, ranks and `sort: rank`."""

from __future__ import annotations

import datetime as dt
import json
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.content.issues import Issue, Selection
from newsletter.content.papers import Paper
from newsletter.content.selection import select_papers
from newsletter.ingest.huggingface import parse_hf
from newsletter.ingest.listing import parse_listing
from tests.support.project import MINIMAL_SETTINGS
from tests.support.sources import FIXTURES

SETTINGS = MINIMAL_SETTINGS

# An editor's file: comments, an unusual key order, a flow list with a comment, a note.
EDITED = """\
---
# picked by hand at the reading group
title: "Tiny Multilingual Models: A Field Guide"
id: tiny-multilingual-models
published: 2026-03-17
tags: [multilingual, Efficiency]  # keep 'efficiency' for the March issue
upvotes: 4
---

We study small language models across forty languages.

## Editor's note

Read section 4 first.
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "newsletter.toml").write_text(SETTINGS, encoding="utf-8")
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "tiny-multilingual-models.md").write_text(EDITED, encoding="utf-8")
    (tmp_path / "papers" / "cross-lingual-reward-models.md").write_text(
        "---\nid: cross-lingual-reward-models\ntitle: Cross-Lingual Reward Models\n"
        "published: 2026-03-16\nrank: 2\ntags:\n- alignment\n---\n\nReward models degrade off English.\n",
        encoding="utf-8",
    )
    return tmp_path


def run(root: Path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["--root", str(root), "papers", *args], env=env, catch_exceptions=False)


def test_tag_rewrites_only_the_tags_line_keeping_comments_key_order_and_flow_style(root: Path) -> None:
    result = run(root, "tag", "tiny", "--add", "Tokenization", "--remove", "efficiency")
    assert result.exit_code == 0, result.output
    assert "updated    tiny-multilingual-models  tags: multilingual, tokenization" in result.output
    text = (root / "papers" / "tiny-multilingual-models.md").read_text(encoding="utf-8")
    assert text == EDITED.replace(
        "tags: [multilingual, Efficiency]  # keep", "tags: [multilingual, tokenization]  # keep"
    )


def test_tag_on_a_block_list_and_several_papers_at_once(root: Path) -> None:
    result = run(root, "tag", "cross-lingual-reward-models", "tiny-multilingual-models", "--add", "march")
    assert result.exit_code == 0, result.output
    block = (root / "papers" / "cross-lingual-reward-models.md").read_text(encoding="utf-8")
    assert "rank: 2\ntags:\n- alignment\n- march\n---\n\nReward models" in block
    assert "tags: [multilingual, Efficiency, march]  # keep" in (
        root / "papers" / "tiny-multilingual-models.md"
    ).read_text(encoding="utf-8")
    again = run(root, "tag", "cross", "--add", "march")
    assert "unchanged  cross-lingual-reward-models" in again.output


def test_tag_with_an_unknown_id_changes_no_file(root: Path) -> None:
    before = {p.name: p.read_bytes() for p in (root / "papers").iterdir()}
    result = run(root, "tag", "tiny", "tiny-multilingual-modles", "--add", "x")
    assert result.exit_code == 1
    assert (
        "Error: tiny-multilingual-modles: no such paper; did you mean 'tiny-multilingual-models'?"
        in result.output
    )
    assert {p.name: p.read_bytes() for p in (root / "papers").iterdir()} == before


def _editor(tmp_path: Path, note: str) -> str:
    """An $EDITOR that replaces the file it is given with `note` (what an editor would type)."""
    script = tmp_path / "fake-editor.py"
    script.write_text(
        f"import sys, pathlib\npathlib.Path(sys.argv[1]).write_text({note!r}, encoding='utf-8')\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{sys.executable} {script}"


def test_note_opens_the_editor_on_the_note_and_keeps_front_matter_and_abstract(
    root: Path, tmp_path: Path
) -> None:
    result = run(
        root, "note", "tiny", env={"EDITOR": _editor(tmp_path, "Read section 2.\n\nThen the appendix.\n")}
    )
    assert result.exit_code == 0, result.output
    assert "tiny-multilingual-models: note saved" in result.output
    text = (root / "papers" / "tiny-multilingual-models.md").read_text(encoding="utf-8")
    assert text == EDITED.replace("Read section 4 first.", "Read section 2.\n\nThen the appendix.")

    added = run(root, "note", "cross", env={"EDITOR": _editor(tmp_path, "Short and useful.")})
    assert added.exit_code == 0, added.output
    assert (
        (root / "papers" / "cross-lingual-reward-models.md")
        .read_text(encoding="utf-8")
        .endswith("Reward models degrade off English.\n\n## Editor's note\n\nShort and useful.\n")
    )

    removed = run(root, "note", "tiny", env={"EDITOR": _editor(tmp_path, "")})
    assert "note removed" in removed.output
    assert (
        (root / "papers" / "tiny-multilingual-models.md")
        .read_text(encoding="utf-8")
        .endswith("We study small language models across forty languages.\n")
    )


def test_list_has_a_header_a_rank_column_and_blank_unknown_upvotes(root: Path) -> None:
    result = run(root, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["id", "published", "rank", "upvotes", "tags", "title"]
    assert lines[1].split()[:4] == ["tiny-multilingual-models", "2026-03-17", "4", "multilingual,"]
    assert lines[2].split()[:4] == ["cross-lingual-reward-models", "2026-03-16", "2", "alignment"]
    rank, upvotes = lines[0].index("   rank") + 3, lines[0].index("upvotes")
    assert lines[1][rank : rank + 4] == "    "  # no rank: blank
    assert lines[2][upvotes : upvotes + 7] == "       "  # unknown upvotes: blank, not '-'
    assert lines[1][upvotes : upvotes + 7] == "      4"
    assert lines[-1] == "2 papers"


def test_list_filters_untagged_since_and_not_featured(root: Path) -> None:
    (root / "papers" / "untagged-paper.md").write_text(
        "---\nid: untagged-paper\ntitle: Untagged\npublished: 2026-03-10\n---\n\nAn abstract.\n",
        encoding="utf-8",
    )
    (root / "issues").mkdir()
    (root / "issues" / "2026-03-18-march.md").write_text(
        "---\ntitle: March\ndate: 2026-03-18\nnumber: 1\ninclude: [tiny-multilingual-models]\n---\nHello.\n",
        encoding="utf-8",
    )

    def ids(*options: str) -> list[str]:
        result = run(root, "list", "--json", *options)
        assert result.exit_code == 0, result.output
        return [row["id"] for row in json.loads(result.output)]

    assert ids("--untagged") == ["untagged-paper"]
    assert ids("--since", "2026-03-16") == ["tiny-multilingual-models", "cross-lingual-reward-models"]
    assert ids("--not-featured") == ["cross-lingual-reward-models", "untagged-paper"]
    assert json.loads(run(root, "list", "--json", "--tag", "alignment").output)[0]["rank"] == 2


def test_the_listing_import_keeps_each_papers_position_as_rank() -> None:
    text = (FIXTURES / "listing.txt").read_text(encoding="utf-8")
    parsed = parse_listing(text, where="listing.txt", date=dt.date(2026, 3, 17))
    assert [(c.rank, c.title) for c in parsed.candidates] == [
        (1, "Tiny Multilingual Models: A Field Guide"),
        (2, "Cross-Lingual Reward Models Are Brittle"),
    ]
    assert parsed.candidates[0].fields()["rank"] == 1


def test_the_listing_import_writes_rank_and_sort_rank_follows_it(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text(SETTINGS, encoding="utf-8")
    result = run(tmp_path, "import", str(FIXTURES / "listing.txt"), "--date", "2026-03-17")
    assert result.exit_code == 0, result.output
    listed = json.loads(run(tmp_path, "list", "--json").output)
    assert [(p["rank"], p["upvotes"]) for p in listed] == [(1, None), (2, None)]
    assert "rank: 1\n" in (tmp_path / "papers" / f"{listed[0]['id']}.md").read_text(encoding="utf-8")


def _paper(pid: str, rank: int | None, upvotes: int | None = None) -> Paper:
    return Paper(
        pid,
        pid.title(),
        "abstract",
        Path(f"{pid}.md"),
        published=dt.date(2026, 3, 17),
        rank=rank,
        upvotes=upvotes,
    )


def test_sort_rank_puts_the_top_of_the_page_first_and_unranked_papers_last() -> None:
    pool = {p.id: p for p in [_paper("a", 3), _paper("b", None, 99), _paper("c", 1), _paper("d", 2)]}
    issue = Issue(
        slug="2026-03-18-x", path=Path("x.md"), title="X", subject="X", date=dt.date(2026, 3, 18), number=1,
        intro="", language="en", select=Selection(sort="rank", limit=3),
    )  # fmt: skip
    assert [p.id for p in select_papers(issue, pool)] == ["c", "d", "a"]


def test_sort_rank_is_accepted_in_an_issues_select(root: Path) -> None:
    (root / "issues").mkdir()
    (root / "issues" / "2026-03-18-march.md").write_text(
        "---\ntitle: March\ndate: 2026-03-18\nnumber: 1\nselect: {sort: rank, limit: 1}\n---\nHello.\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["--root", str(root), "issues", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["papers"] == 1


def test_hidden_authors_on_hugging_face_are_still_authors() -> None:
    data = json.loads((FIXTURES / "hf-daily-papers-documented.json").read_text(encoding="utf-8"))
    parsed = parse_hf(data, where="hf")
    first = parsed.candidates[0]
    assert first.authors == [
        "Jürgen Schäfer",
        "Lina Müller-Özdemir",
        "Wei Zhang (张伟)",
        "Anonymous Reviewer Placeholder",
    ]
    assert [c.upvotes for c in parsed.candidates] == [87, 41, 0]


def test_note_refuses_when_the_file_changed_while_the_editor_was_open(root: Path, tmp_path: Path) -> None:
    paper = root / "papers" / "tiny-multilingual-models.md"
    script = tmp_path / "busy-editor.py"
    script.write_text(
        "import sys, pathlib\n"
        "pathlib.Path(sys.argv[1]).write_text('A new note.', encoding='utf-8')\n"
        f"p = pathlib.Path({str(paper)!r})\n"
        "p.write_text(p.read_text(encoding='utf-8') + 'Saved elsewhere meanwhile.\\n', encoding='utf-8')\n",
        encoding="utf-8",
    )
    result = run(root, "note", "tiny", env={"EDITOR": f"{sys.executable} {script}"})
    assert result.exit_code == 1
    assert (
        "papers/tiny-multilingual-models.md: changed while `newsletter papers note` ran; nothing was written"
        in result.output
    )
    assert paper.read_text(encoding="utf-8") == EDITED + "Saved elsewhere meanwhile.\n"


# A block list with the editor's comments: above the items, after one, between two.
COMMENTED = """\
---
id: commented-tags
title: Commented Tags
tags:
  # picked at the reading group
  - alignment  # from the March meeting
  # safety is for the April issue
  - safety
  - misc
# the rank is the page's
rank: 3
---

An abstract.
"""


def test_tag_keeps_comments_inside_a_multi_line_tags_list(root: Path) -> None:
    path = root / "papers" / "commented-tags.md"
    path.write_text(COMMENTED, encoding="utf-8")
    result = run(root, "tag", "commented-tags", "--remove", "misc", "--add", "multilingual", "--add", "rlhf")
    assert result.exit_code == 0, result.output
    assert "updated    commented-tags  tags: alignment, safety, multilingual, rlhf" in result.output
    assert path.read_text(encoding="utf-8") == COMMENTED.replace("  - misc\n", "  - multilingual\n  - rlhf\n")
    removed = run(root, "tag", "commented-tags", "--remove", "safety")
    assert removed.exit_code == 0, removed.output
    assert path.read_text(encoding="utf-8") == COMMENTED.replace(
        "  - safety\n  - misc\n", "  - multilingual\n  - rlhf\n"
    )
    emptied = run(
        root, "tag", "commented-tags", "--remove", "alignment", "--remove", "multilingual", "--remove", "rlhf"
    )
    assert emptied.exit_code == 0, emptied.output
    text = path.read_text(encoding="utf-8")
    assert "tags: []\n# the rank is the page's\nrank: 3\n" in text
