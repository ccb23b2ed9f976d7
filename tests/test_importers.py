"""Importers: parsing each format, dedupe, editor-safe re-imports, fetching over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import frontmatter
import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.errors import ProblemsError
from newsletter.importers import (
    USER_AGENT,
    SourceError,
    arxiv_url,
    fetch,
    hf_url,
    import_papers,
    parse_listing,
    parse_source,
    slugify,
)

from .servers_importers import FIXTURES, Route, fixture_server  # noqa: F401 - a pytest fixture

TODAY = dt.date(2026, 3, 20)
SETTINGS = """\
[newsletter]
name = "Test Digest"
base_url = "https://digest.example.org/"
postal_address = "1 Example Street, Berlin"

[email]
from = "Test Digest <digest@example.org>"
list_id = "test.digest.example.org"
reply_to = "editor@example.org"
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "newsletter.toml").write_text(SETTINGS, encoding="utf-8")
    (tmp_path / "papers").mkdir()
    return tmp_path


def run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--root", str(root), "papers", *args], catch_exceptions=False)


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def read(path: Path) -> frontmatter.Post:
    return frontmatter.loads(path.read_text(encoding="utf-8"))


def listing(root: Path) -> list[str]:
    """Every entry in papers/, hidden temporary files included."""
    return sorted(p.name for p in (root / "papers").iterdir())


# ---------------------------------------------------------------------------
# listing


def test_listing_parser_skips_header_pairs_titles_and_refuses_orphans() -> None:
    text = (FIXTURES / "listing.txt").read_text(encoding="utf-8")
    parsed = parse_listing(text, where="listing.txt", date=dt.date(2026, 3, 17))
    assert [c.title for c in parsed.candidates] == [
        "Tiny Multilingual Models: A Field Guide",
        "Cross-Lingual Reward Models Are Brittle",
    ]
    assert all(c.published == dt.date(2026, 3, 17) for c in parsed.candidates)
    assert [c.where for c in parsed.candidates] == ["listing.txt:9", "listing.txt:13"]
    second = parsed.candidates[1].abstract.split("\n\n")
    assert len(second) == 2 and second[1].startswith("Our method needs no additional human labels")
    assert [(r.where, r.title, r.reason) for r in parsed.refused] == [
        ("listing.txt:19", "Load more", "no abstract follows the title")
    ]
    assert parsed.notes == [
        "listing.txt: skipped 3 header line(s): 'new', 'Get trending papers in your email inbox!', 'Subscribe'"
    ]


def test_listing_without_year_takes_the_most_recent_past_date_and_says_so() -> None:
    text = (FIXTURES / "listing.txt").read_text(encoding="utf-8")
    parsed = parse_listing(text, where="l.txt", today=dt.date(2026, 1, 10))
    assert {c.published for c in parsed.candidates} == {dt.date(2025, 3, 17)}
    assert "l.txt:7: 'Mar 17' has no year; assumed 2025-03-17" in "\n".join(parsed.notes)


def test_listing_without_date_line_finds_the_first_title_abstract_pair() -> None:
    abstract = "word " * 60
    text = f"Some Site\n\nSign in\n\nA Real Title\n\n{abstract}\n"
    parsed = parse_listing(text, where="x.txt", today=TODAY)
    assert [c.title for c in parsed.candidates] == ["A Real Title"]
    assert parsed.candidates[0].published is None
    assert parsed.notes == ["x.txt: skipped 2 header line(s): 'Some Site', 'Sign in'"]


def test_slugs_are_ascii_short_and_cut_at_a_word_boundary() -> None:
    assert slugify("Ça va? Übersetzung für Sprachmodelle") == "ca-va-ubersetzung-fur-sprachmodelle"
    long = slugify("Bridging the Gap: Enhancing LLM Performance for Low-Resource African Languages with New")
    assert long == "bridging-the-gap-enhancing-llm-performance-for-low-resource"
    assert slugify("多语言大模型").startswith("paper-")


def test_example_listing_imports_45_papers(root: Path, tmp_path: Path) -> None:
    """The shared example listing, when present next to the repository."""
    source = Path(__file__).resolve().parents[2] / "shared" / "data" / "papers-listing-multilingual.txt"
    if not source.exists():
        pytest.skip("../shared/data/papers-listing-multilingual.txt not available")
    report = import_papers([str(source)], root / "papers", date=dt.date(2026, 3, 17), today=TODAY)
    assert (len(report.created), len(report.refused)) == (45, 0)
    assert len(list((root / "papers").glob("*.md"))) == 45


# ---------------------------------------------------------------------------
# hf and arXiv


def test_hf_import_writes_front_matter_in_order_and_refuses_bad_items(root: Path) -> None:
    result = run(root, "import", fixture("hf.json"))
    assert result.exit_code == 0, result.output
    assert listing(root) == ["2403.01234.md", "2403.05678.md"]
    text = (root / "papers" / "2403.01234.md").read_text(encoding="utf-8")
    assert text.startswith(
        "---\n"
        "id: '2403.01234'\n"
        "title: Cross-Lingual Reward Models Are Brittle\n"
        "authors:\n- Ana Souza\n- Kenji Sato\n"
        "published: 2024-03-02\n"
        "url: https://huggingface.co/papers/2403.01234\n"
        "arxiv: '2403.01234'\n"
        "pdf: https://arxiv.org/pdf/2403.01234\n"
        "code: https://github.com/example/xl-reward\n"
        "thumbnail: https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2403.01234.png\n"
        "thumbnail_alt: Thumbnail for Cross-Lingual Reward Models Are Brittle\n"
        "upvotes: 12\n"
        "tags:\n- reward-models\n- cross-lingual\n- alignment\n- calibration\n- rlhf\n"
        "source: hf\n"
        f"imported: {dt.date.today().isoformat()}\n"
        "---\n\n"
        "Reward models trained on English"
    )
    speech = read(root / "papers" / "2403.05678.md")
    assert "thumbnail" not in speech.metadata  # a javascript: URL is dropped
    assert speech.metadata["project_page"] == "https://example.org/speech-tok"
    assert speech.content == (
        "We train a speech tokenizer on 100 languages.\n\nIt beats monolingual tokenizers on word error rate."
    )
    assert "refused    hf.json" not in result.output  # where is the full path given
    assert (
        f"refused    {fixture('hf.json')}[2] 'A Broken Item': expected an arXiv id like 2412.04003, got 'not-an-id'"
        in (result.output)
    )
    assert f"refused    {fixture('hf.json')}[3] 'No Abstract Here': no abstract" in result.output
    assert result.output.endswith("2 created, 0 updated, 0 unchanged, 2 refused\n")


def test_arxiv_feed_is_parsed(root: Path) -> None:
    report = import_papers([fixture("arxiv.xml")], root / "papers", today=TODAY)
    assert [c.id for c in report.created] == ["2403.05678", "2403.07777"]
    post = read(root / "papers" / "2403.05678.md")
    assert post.metadata["title"] == "Speech Tokenizers for Many Languages"
    assert post.metadata["tags"] == ["cs.cl", "eess.as"]
    assert post.metadata["url"] == "https://arxiv.org/abs/2403.05678"
    assert post.metadata["published"] == dt.date(2024, 3, 5)
    assert (
        post.content
        == "We train a speech tokenizer on 100 languages. It beats monolingual tokenizers on word error rate."
    )
    assert read(root / "papers" / "2403.07777.md").metadata["authors"] == ["Amara Okafor", "Jonas Berg"]


def test_arxiv_error_feed_and_xml_bombs_are_source_errors() -> None:
    with pytest.raises(SourceError) as error:
        parse_source((FIXTURES / "arxiv-error.xml").read_bytes(), "auto", where="q")
    assert str(error.value) == "q: the arXiv API reported an error: incorrect id format for 1234"
    bomb = b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><feed>&b;</feed>'
    with pytest.raises(SourceError) as error:
        parse_source(bomb, "arxiv", where="bomb.xml")
    assert str(error.value) == "bomb.xml: refused unsafe XML (EntitiesForbidden)"


def test_hostile_titles_round_trip_exactly(root: Path) -> None:
    report = import_papers([fixture("hostile.json")], root / "papers", today=TODAY)
    assert len(report.created) == 9 and not report.refused
    source = json.loads((FIXTURES / "hostile.json").read_text(encoding="utf-8"))
    expected = [item["paper"]["title"] for item in source]
    expected[-1] = "Ctrlchars and tabs collapse \"quoted\" 'single' # not a comment: yes"
    got = [read(root / "papers" / f"{item['paper']['id']}.md") for item in source]
    assert [p.metadata["title"] for p in got] == expected
    assert got[0].metadata["authors"] == ["李雷", 'O\'Brien: "Jr"']
    assert got[3].metadata["title"] == "---" and got[3].content.startswith("Abstract of --- --- Still")
    assert "<b>bold</b> {{ x }} \u200fעברית" in got[1].content

    # the content module reads the same values back
    from newsletter.config import load_settings
    from newsletter.content import load_papers

    papers = {p.id: p for p in load_papers(load_settings(root))}
    assert [papers[item["paper"]["id"]].title for item in source] == expected


# ---------------------------------------------------------------------------
# dedupe and re-import


def test_reimport_keeps_editor_changes_and_updates_upvotes(root: Path) -> None:
    assert run(root, "import", fixture("hf.json")).exit_code == 0
    path = root / "papers" / "2403.01234.md"
    post = read(path)
    post.metadata["title"] = "Reward Models Break Outside English"
    post.metadata["tags"] = ["alignment", "evaluation"]
    post.content += "\n\n## Editor's note\n\nRead section 4 first."
    edited_abstract = post.content
    path.write_text(frontmatter.dumps(post, sort_keys=False, allow_unicode=True), encoding="utf-8")

    result = run(root, "import", fixture("hf-updated.json"))
    assert result.exit_code == 0, result.output
    assert "updated    2403.01234  upvotes\n" in result.output
    assert result.output.endswith("0 created, 1 updated, 0 unchanged, 0 refused\n")
    after = read(path)
    assert after.metadata["upvotes"] == 40
    assert after.metadata["title"] == "Reward Models Break Outside English"
    assert after.metadata["tags"] == ["alignment", "evaluation"]
    assert after.content == edited_abstract
    assert after.content.endswith("## Editor's note\n\nRead section 4 first.")

    again = run(root, "import", fixture("hf-updated.json"))
    assert again.output.endswith("0 created, 0 updated, 1 unchanged, 0 refused\n")


@pytest.mark.parametrize("together", [True, False])
def test_dedupe_across_listing_hf_and_arxiv(root: Path, together: bool) -> None:
    sources = [fixture("listing.txt"), fixture("hf.json"), fixture("arxiv.xml")]
    batches = [sources] if together else [[s] for s in sources]
    for batch in batches:
        import_papers(batch, root / "papers", date=dt.date(2026, 3, 17), today=TODAY)
    assert listing(root) == [
        "2403.05678.md",  # from hf, seen again in the arXiv feed
        "2403.07777.md",
        "cross-lingual-reward-models-are-brittle.md",  # from the listing; hf adds its arXiv id
        "tiny-multilingual-models-a-field-guide.md",
    ]
    reward = read(root / "papers" / "cross-lingual-reward-models-are-brittle.md")
    assert reward.metadata["id"] == "cross-lingual-reward-models-are-brittle"
    assert reward.metadata["arxiv"] == "2403.01234"
    assert reward.metadata["upvotes"] == 12
    assert reward.metadata["source"] == "listing"
    assert reward.metadata["published"] == dt.date(2026, 3, 17)
    assert "tags" not in reward.metadata  # tags are the editor's once the file exists
    assert reward.content.startswith("Reward models trained on English preference data are routinely used")
    assert reward.content.count("\n\n") == 1  # the listing's two paragraphs, not hf's shorter summary


def test_tags_option_applies_to_new_papers_only(root: Path) -> None:
    import_papers([fixture("listing.txt")], root / "papers", date=dt.date(2026, 3, 17), tags=["Weekly Pick"])
    post = read(root / "papers" / "tiny-multilingual-models-a-field-guide.md")
    assert post.metadata["tags"] == ["weekly-pick"]


def test_dry_run_reports_but_writes_nothing(root: Path) -> None:
    result = run(root, "import", fixture("listing.txt"), "--date", "2026-03-17", "--dry-run")
    assert result.exit_code == 0
    assert (
        "created    tiny-multilingual-models-a-field-guide  Tiny Multilingual Models: A Field Guide"
        in result.output
    )
    assert result.output.endswith("2 created, 0 updated, 0 unchanged, 1 refused (dry run: nothing written)\n")
    assert listing(root) == []


def test_bad_date_option_is_a_usage_error(root: Path) -> None:
    result = run(root, "import", fixture("listing.txt"), "--date", "17/3")
    assert result.exit_code == 2
    assert "Invalid value for '--date': expected YYYY-MM-DD, got '17/3'" in result.output


# ---------------------------------------------------------------------------
# failures write nothing


def test_one_unusable_source_writes_nothing(root: Path) -> None:
    result = run(root, "import", fixture("hf.json"), fixture("invalid.json"), str(root / "missing.json"))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {fixture('invalid.json')}: not valid JSON: Unterminated string starting at (line 1, column 42)\n"
        f"Error: {root / 'missing.json'}: no such file\n\n"
        "Aborted with 2 errors.\n"
    )
    assert listing(root) == []


def test_unreadable_existing_paper_stops_the_import(root: Path) -> None:
    (root / "papers" / "broken.md").write_text("no front matter here\n", encoding="utf-8")
    result = run(root, "import", fixture("hf.json"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: papers/broken.md: expected front matter between '---' lines;")
    assert listing(root) == ["broken.md"]


def test_html_page_is_refused(root: Path) -> None:
    as_hf = run(root, "import", "--format", "hf", fixture("page.html"))
    assert as_hf.output.startswith(
        f"Error: {fixture('page.html')}: expected JSON (Hugging Face daily papers), got an HTML page\n"
    )
    auto = run(root, "import", fixture("page.html"))
    assert auto.output.startswith(
        f"Error: {fixture('page.html')}: got an HTML page; expected Hugging Face JSON, arXiv Atom XML or a "
        "plain-text listing\n"
    )
    assert listing(root) == []


# ---------------------------------------------------------------------------
# over HTTP (a real server on 127.0.0.1)


def test_fetch_sends_a_user_agent_and_imports_over_http(root: Path, fixture_server) -> None:  # noqa: F811
    url = fixture_server.serve_fixture("hf.json")
    result = run(root, "import", url)
    assert result.exit_code == 0, result.output
    assert result.output.endswith("2 created, 0 updated, 0 unchanged, 2 refused\n")
    assert f"refused    {url}[2] 'A Broken Item'" in result.output
    assert fixture_server.user_agents == [USER_AGENT]
    assert USER_AGENT.startswith("newsletter/0.1.0 (+https://")


def test_http_500_is_retried_then_reported(fixture_server) -> None:  # noqa: F811
    url = fixture_server.serve("/daily", Route(status=500, body=b"oops"))
    waits: list[float] = []
    with pytest.raises(SourceError) as error:
        fetch(url, backoff=0.5, sleep=waits.append)
    assert (
        str(error.value) == f"{url}: expected HTTP 200, got HTTP 500 Internal Server Error (after 4 attempts)"
    )
    assert fixture_server.hits["/daily"] == 4
    assert waits == [0.5, 1.0, 2.0]


def test_transient_503_recovers(root: Path, fixture_server) -> None:  # noqa: F811
    url = fixture_server.serve_fixture("hf.json", fail_first=2)
    fetched = fetch(url, sleep=lambda _: None)
    assert json.loads(fetched.body)[0]["paper"]["id"] == "2403.01234"
    assert fixture_server.hits["/hf.json"] == 3


def test_http_404_is_not_retried(root: Path, fixture_server) -> None:  # noqa: F811
    url = fixture_server.url + "/nope.json"
    result = run(root, "import", url)
    assert result.exit_code == 1
    assert (
        result.output == f"Error: {url}: expected HTTP 200, got HTTP 404 Not Found\n\nAborted with 1 error.\n"
    )
    assert fixture_server.hits["/nope.json"] == 1
    assert listing(root) == []


def test_invalid_json_over_http(root: Path, fixture_server) -> None:  # noqa: F811
    url = fixture_server.serve_fixture("invalid.json")
    result = run(root, "import", url)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {url}: not valid JSON: Unterminated string starting at (line 1, column 42)\n\nAborted with 1 error.\n"
    )
    assert listing(root) == []


def test_html_served_instead_of_json(root: Path, fixture_server) -> None:  # noqa: F811
    url = fixture_server.serve_fixture("page.html", content_type="text/html; charset=utf-8")
    with pytest.raises(ProblemsError) as error:
        import_papers([url], root / "papers", fmt="hf")
    assert str(error.value.problems[0]) == (
        f"{url}: expected JSON (Hugging Face daily papers), got an HTML page (Content-Type: text/html; charset=utf-8)"
    )
    assert listing(root) == []


def test_truncated_body_is_an_error_and_writes_nothing(root: Path, fixture_server) -> None:  # noqa: F811
    body = (FIXTURES / "hf.json").read_bytes()
    url = fixture_server.serve("/cut.json", Route(body=body[:300], content_length=len(body)))
    good = fixture_server.serve_fixture("arxiv.xml", content_type="application/atom+xml")
    options = {"backoff": 0, "sleep": lambda _: None}
    with pytest.raises(ProblemsError) as error:
        import_papers([good, url], root / "papers", fetch_options=options)
    assert [str(p) for p in error.value.problems] == [
        f"{url}: truncated response: expected {len(body)} bytes (Content-Length), got 300 (after 4 attempts)"
    ]
    assert fixture_server.hits["/cut.json"] == 4
    assert listing(root) == []  # the good source was not written either, and no temporary files remain


def test_unreachable_server_is_a_clear_error(fixture_server) -> None:  # noqa: F811
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.json"
    with pytest.raises(SourceError) as error:
        fetch(url, retries=1, sleep=lambda _: None, timeout=2)
    assert str(error.value) == f"{url}: cannot connect: [Errno 111] Connection refused (after 2 attempts)"


def test_fetch_builds_source_urls(root: Path) -> None:
    assert hf_url(dt.date(2026, 3, 17)) == "https://huggingface.co/api/daily_papers?date=2026-03-17"
    assert arxiv_url("cat:cs.CL AND abs:multilingual", 20) == (
        "http://export.arxiv.org/api/query?search_query=cat:cs.CL%20AND%20abs:multilingual"
        "&start=0&max_results=20&sortBy=submittedDate&sortOrder=descending"
    )
    result = run(root, "fetch")
    assert result.exit_code == 2
    assert "expected exactly one of --hf-date or --arxiv-query" in result.output


# ---------------------------------------------------------------------------
# papers list


def test_papers_list_filters_and_prints_json(root: Path) -> None:
    import_papers([fixture("hf.json"), fixture("arxiv.xml")], root / "papers", today=TODAY)
    result = run(root, "list", "--min-upvotes", "10", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["id"], r["upvotes"], r["published"]) for r in rows] == [("2403.01234", 12, "2024-03-02")]
    table = run(root, "list", "--tag", "cs.cl", "--since", "2024-03-06")
    assert table.output.splitlines()[0].startswith("2403.07777\t2024-03-07\t-\tcs.cl\tTokenization Fairness")
    assert table.output.endswith("1 paper\n")
