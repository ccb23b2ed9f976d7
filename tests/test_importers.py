"""Importers: parsing each format, dedupe, editor-safe re-imports, fetching over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import frontmatter
import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.errors import ProblemsError
from newsletter.ingest.candidates import SourceError, slugify
from newsletter.ingest.fetch import USER_AGENT, arxiv_url, fetch, hf_url
from newsletter.ingest.listing import parse_listing
from newsletter.ingest.plan import import_papers
from newsletter.ingest.sources import parse_source
from tests.support.project import MINIMAL_SETTINGS
from tests.support.sources import FIXTURES, Route, fixture_server  # noqa: F401 - a pytest fixture

TODAY = dt.date(2026, 3, 20)
SETTINGS = MINIMAL_SETTINGS


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
    assert "\\<b\\>bold\\</b\\> {{ x }} \u200fעברית" in got[1].content  # Markdown-escaped: shown as text

    # the content module reads the same values back
    from newsletter.config import load_settings
    from newsletter.content.library import load_papers

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
    assert result.exit_code == 1  # a usage error is a user error: exit 1
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


def test_user_agent_names_the_package_and_no_made_up_url() -> None:
    from importlib import metadata

    from newsletter import __version__

    declared = metadata.metadata("newsletter").get_all("Project-URL") or []
    if declared:  # pyproject gained a URL: the User-Agent may point to it, and only to it
        assert USER_AGENT.startswith(f"newsletter/{__version__} (+https://")
    else:
        assert f"newsletter/{__version__}" == USER_AGENT


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
        "https://export.arxiv.org/api/query?search_query=cat:cs.CL%20AND%20abs:multilingual"
        "&start=0&max_results=20&sortBy=submittedDate&sortOrder=descending"
    )
    result = run(root, "fetch")
    assert result.exit_code == 1  # a usage error is a user error: exit 1
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
    header, row = table.output.splitlines()[:2]
    assert header.split() == ["id", "published", "rank", "upvotes", "tags", "title"]
    assert row.split()[:3] == ["2403.07777", "2024-03-07", "cs.cl"]  # no rank, no upvotes: blank cells
    assert row.split("cs.cl", 1)[1].strip().startswith("Tokenization Fairness")
    assert table.output.endswith("1 paper\n")


def test_fetch_command_refuses_an_empty_arxiv_query(root: Path) -> None:
    result = run(root, "fetch", "--arxiv-query", "  ")
    assert result.exit_code == 1  # a usage error is a user error: exit 1
    assert (
        "Invalid value for '--arxiv-query': expected a search query like 'abs:multilingual'" in result.output
    )


# ---------------------------------------------------------------------------
# more ways a server misbehaves


def test_http_429_waits_for_retry_after_then_recovers(fixture_server) -> None:  # noqa: F811
    body = (FIXTURES / "hf.json").read_bytes()
    url = fixture_server.serve("/limited", Route(status=429, body=b"slow down", headers={"Retry-After": "7"}))
    waits: list[float] = []
    with pytest.raises(SourceError) as error:
        fetch(url, retries=2, backoff=0.5, sleep=waits.append)
    assert str(error.value) == f"{url}: expected HTTP 200, got HTTP 429 Too Many Requests (after 3 attempts)"
    assert waits == [7.0, 7.0]  # Retry-After when longer than the backoff
    fixture_server.routes["/limited"] = Route(body=body)
    assert fetch(url, sleep=waits.append).body == body


def test_a_server_that_trickles_bytes_hits_the_deadline(fixture_server) -> None:  # noqa: F811
    import time

    url = fixture_server.serve("/slow", Route(body=b"[" + b" " * 200 + b"]", trickle=0.05))
    start = time.monotonic()
    with pytest.raises(SourceError) as error:
        fetch(url, timeout=5, deadline=0.5, retries=1, sleep=lambda _: None)
    elapsed = time.monotonic() - start
    assert str(error.value) == f"{url}: the response took longer than 0.5 s (after 2 attempts)"
    assert elapsed < 2.5  # two attempts of ~0.5 s, not 200 bytes x 50 ms each


def test_a_read_timeout_is_named(fixture_server) -> None:  # noqa: F811
    url = fixture_server.serve("/stuck", Route(body=b"[]", trickle=2))
    with pytest.raises(SourceError) as error:
        fetch(url, timeout=0.3, retries=0)
    assert str(error.value) == f"{url}: no answer within 0.3 s (timeout) (after 1 attempts)"


def test_truncated_chunked_body_is_retried_not_imported(root: Path, fixture_server) -> None:  # noqa: F811
    """Without Content-Length only the chunk framing shows the cut; a half listing must not import."""
    body = (FIXTURES / "listing.txt").read_bytes()
    url = fixture_server.serve(
        "/cut.txt", Route(body=body[:400], content_length=len(body), chunked=True, content_type="text/plain")
    )
    with pytest.raises(ProblemsError) as error:
        import_papers([url], root / "papers", fetch_options={"sleep": lambda _: None})
    assert [str(p) for p in error.value.problems] == [
        f"{url}: truncated response: the connection closed after 400 bytes (after 4 attempts)"
    ]
    assert listing(root) == []
    whole = fixture_server.serve("/whole.txt", Route(body=body, chunked=True, content_type="text/plain"))
    assert fetch(whole).body == body


def test_redirects_are_followed_to_http_only(fixture_server) -> None:  # noqa: F811
    target = fixture_server.serve_fixture("hf.json")
    hop = fixture_server.serve("/hop", Route(status=302, headers={"Location": target}))
    assert fetch(hop).body == (FIXTURES / "hf.json").read_bytes()
    ftp = fixture_server.serve("/ftp", Route(status=302, headers={"Location": "ftp://127.0.0.1/x.json"}))
    with pytest.raises(SourceError) as error:
        fetch(ftp, sleep=lambda _: None)
    assert str(error.value) == (
        f"{ftp}: expected a redirect to an http(s) URL, got one to 'ftp://127.0.0.1/x.json'"
    )
    assert fixture_server.hits["/ftp"] == 1


# ---------------------------------------------------------------------------
# editor's files survive re-imports byte for byte

EDITED = """\
---
# picked for issue 3 -- keep
id: 2403.01234
title: "Reward Models Break Outside English"
arxiv: 2403.01234
tags: [alignment, yes]
published: 2024-03-02
upvotes: 1   # refreshed by imports
imported: 2024-03-03
---
My own summary of it.

## Editor's note
Read section 4 first.
"""


def test_reimport_rewrites_only_the_changed_lines_of_an_edited_file(root: Path) -> None:
    """Regression: a re-import re-dumped the whole front matter through YAML: the unquoted id
    2403.01234 became the float 2403.01234 -> '2403.01234' survived, but 2401.10010 became
    2401.1001 (and `newsletter check` then failed), `yes` became true, comments were lost."""
    path = root / "papers" / "2403.01234.md"
    path.write_text(EDITED, encoding="utf-8")
    (root / "papers" / "2401.10010.md").write_text(
        "---\nid: 2401.10010\narxiv: 2401.10010\ntitle: Trailing Zero\n---\nAbstract.\n", encoding="utf-8"
    )
    source = root / "daily.json"
    source.write_text(
        json.dumps(
            [
                {"paper": {"id": "2403.01234", "title": "Cross-Lingual Reward Models Are Brittle",
                           "summary": "Source abstract.", "upvotes": 12,
                           "githubRepo": "https://github.com/example/xl-reward"}},
                {"paper": {"id": "2401.10010", "title": "Trailing Zero", "summary": "Abstract.", "upvotes": 3}},
            ]
        ),
        encoding="utf-8",
    )  # fmt: skip
    result = run(root, "import", str(source))
    assert result.exit_code == 0, result.output
    assert "updated    2403.01234  upvotes, code, url, pdf\n" in result.output
    assert path.read_text(encoding="utf-8") == EDITED.replace(
        "upvotes: 1   # refreshed by imports\n",
        "upvotes: 12  # refreshed by imports\n",
    ).replace(
        "imported: 2024-03-03\n",
        "imported: 2024-03-03\n"
        "code: https://github.com/example/xl-reward\n"
        "url: https://huggingface.co/papers/2403.01234\n"
        "pdf: https://arxiv.org/pdf/2403.01234\n",
    )
    assert (root / "papers" / "2401.10010.md").read_text(encoding="utf-8") == (
        "---\nid: 2401.10010\narxiv: 2401.10010\ntitle: Trailing Zero\nupvotes: 3\n"
        "url: https://huggingface.co/papers/2401.10010\npdf: https://arxiv.org/pdf/2401.10010\n---\nAbstract.\n"
    )
    from newsletter.config import load_settings
    from newsletter.content.library import load_papers

    papers = {p.id: p for p in load_papers(load_settings(root))}
    assert papers["2401.10010"].arxiv == "2401.10010"
    assert papers["2403.01234"].upvotes == 12 and papers["2403.01234"].note == "Read section 4 first."
    again = run(root, "import", str(source))
    assert again.output.endswith("0 created, 0 updated, 2 unchanged, 0 refused\n")


def test_reimport_keeps_crlf_line_endings(root: Path) -> None:
    path = root / "papers" / "2403.01234.md"
    path.write_bytes(EDITED.replace("\n", "\r\n").encode())
    import_papers([fixture("hf-updated.json")], root / "papers", today=TODAY)
    after = path.read_bytes().decode()
    assert "upvotes: 40  # refreshed by imports\r\n" in after
    assert "\n" not in after.replace("\r\n", "")


def test_reimporting_a_listing_after_the_editor_retitled_a_paper_makes_no_duplicate(root: Path) -> None:
    import_papers([fixture("listing.txt")], root / "papers", date=dt.date(2026, 3, 17), today=TODAY)
    path = root / "papers" / "tiny-multilingual-models-a-field-guide.md"
    path.write_text(path.read_text(encoding="utf-8").replace("A Field Guide", "What Works"), encoding="utf-8")
    before = path.read_text(encoding="utf-8")
    report = import_papers([fixture("listing.txt")], root / "papers", date=dt.date(2026, 3, 17), today=TODAY)
    assert [c.id for c in report.created] == []
    assert sorted(c.id for c in report.unchanged) == [
        "cross-lingual-reward-models-are-brittle",
        "tiny-multilingual-models-a-field-guide",
    ]
    assert path.read_text(encoding="utf-8") == before
    assert len(listing(root)) == 2


def test_a_file_saved_while_the_import_ran_stops_the_write(root: Path) -> None:
    from newsletter.errors import NewsletterError
    from newsletter.ingest.plan import plan_import, write_atomically

    import_papers([fixture("hf.json")], root / "papers", today=TODAY)
    parsed = [parse_source((FIXTURES / "hf-updated.json").read_bytes(), "hf", where="u.json")]
    plan = plan_import(root / "papers", parsed, today=TODAY)
    path = root / "papers" / "2403.01234.md"
    edited = path.read_text(encoding="utf-8") + "\n## Editor's note\n\nJust typed.\n"
    path.write_text(edited, encoding="utf-8")  # the editor saves while the import is running
    with pytest.raises(NewsletterError) as error:
        write_atomically(plan.writes, plan.expected)
    assert str(error.value).startswith(
        "papers/2403.01234.md: changed while the import ran; nothing was written"
    )
    assert path.read_text(encoding="utf-8") == edited
    assert listing(root) == ["2403.01234.md", "2403.05678.md"]  # no temporary files left


# ---------------------------------------------------------------------------
# hf data feeds selection and builds


def test_hf_fields_tolerated_and_refused(root: Path) -> None:
    report = import_papers([fixture("hf-selection.json")], root / "papers", today=TODAY)
    assert [(r.where.rsplit("/", 1)[-1], r.reason) for r in report.refused] == [
        (
            "hf-selection.json[7]",
            "expected an arXiv id like 2412.04003, got 2403.1008 (a number in JSON, not a string)",
        )
    ]
    assert read(root / "papers" / "2403.10005.md").metadata["upvotes"] == 23
    assert "upvotes" not in read(root / "papers" / "2403.10006.md").metadata
    assert "code" not in read(root / "papers" / "2403.10007.md").metadata


def _scaffold(tmp_path: Path) -> Path:
    target = tmp_path / "digest"
    result = CliRunner().invoke(main, ["init", str(target)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for path in [*(target / "papers").glob("*.md"), *(target / "issues").glob("*.md")]:
        path.unlink()
    return target


def test_imported_hf_papers_feed_min_upvotes_sort_and_has_code(tmp_path: Path) -> None:
    from newsletter.config import load_settings
    from newsletter.content.library import load_library
    from newsletter.content.selection import papers_for

    digest = _scaffold(tmp_path)
    assert run(digest, "import", fixture("hf-selection.json")).exit_code == 0
    (digest / "issues" / "2024-03-20-trending.md").write_text(
        "---\ntitle: Trending\ndate: 2024-03-20\nnumber: 1\n"
        "select: {min_upvotes: 10, sort: upvotes, has_code: true}\n---\nThe week's most upvoted code.\n",
        encoding="utf-8",
    )
    library = load_library(load_settings(digest))
    chosen = papers_for(library, library.issue("2024-03-20-trending"))
    # 80 upvotes but no code, 9 upvotes, no upvotes, a code link that is not a URL: left out
    assert [(p.id, p.upvotes) for p in chosen] == [("2403.10001", 55), ("2403.10005", 23), ("2403.10003", 10)]
    out = tmp_path / "out"
    built = CliRunner().invoke(
        main,
        ["--root", str(digest), "build", "2024-03-20-trending", "--out", str(out)],
        catch_exceptions=False,
    )
    assert built.exit_code == 0, built.output
    text = (out / "2024-03-20-trending" / "email.txt").read_text(encoding="utf-8")
    positions = [text.find(t) for t in ("Popular With Code", "Upvotes As Text", "Exactly Ten Upvotes")]
    assert -1 not in positions and positions == sorted(positions)
    assert "Popular Without Code" not in text and "Nine Upvotes" not in text


def test_hostile_and_yaml_lookalike_papers_load_and_build_escaped(tmp_path: Path) -> None:
    from newsletter.config import load_settings
    from newsletter.content.library import load_papers

    digest = _scaffold(tmp_path)
    lookalikes = ["yes", "null", "2401.10010", "2024-01-01", "1e3", "~", "on", "0x1F", "[a, b]", "&anchor"]
    items = [
        {"paper": {"id": f"2406.{20000 + i}", "title": t, "summary": f"{t}\n---\n%%UNSUBSCRIBE_URL%%",
                   "authors": [{"name": t}]}}
        for i, t in enumerate(lookalikes)
    ]  # fmt: skip
    source = tmp_path / "lookalikes.json"
    source.write_text(json.dumps(items), encoding="utf-8")
    result = run(digest, "import", str(source), fixture("hostile.json"))
    assert result.exit_code == 0, result.output
    assert result.output.endswith("19 created, 0 updated, 0 unchanged, 0 refused\n")
    papers = {p.id: p for p in load_papers(load_settings(digest))}
    assert [papers[f"2406.{20000 + i}"].title for i in range(len(lookalikes))] == lookalikes
    assert [papers[f"2406.{20000 + i}"].authors for i in range(len(lookalikes))] == [(t,) for t in lookalikes]
    (digest / "issues" / "2026-06-20-everything.md").write_text(
        "---\ntitle: Everything\ndate: 2026-06-20\nnumber: 1\nselect: {sort: id}\n---\nAll of it.\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    built = CliRunner().invoke(
        main,
        ["--root", str(digest), "build", "2026-06-20-everything", "--out", str(out)],
        catch_exceptions=False,
    )
    assert built.exit_code == 0, built.output
    html = (out / "2026-06-20-everything" / "email.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "<mj-" not in html and "{{ config" in html
    assert "&lt;script&gt;alert(" in html
    # an abstract's marker lookalike stays text, as written; only the template's own links carry markers
    assert len(re.findall(r'href="%%UNSUBSCRIBE_URL-[0-9a-f]{16}%%"', html)) == 2
    assert html.count("%%UNSUBSCRIBE_URL%%") == len(lookalikes)


def test_date_option_on_dated_sources_is_reported_as_ignored(root: Path) -> None:
    result = run(root, "import", fixture("arxiv.xml"), "--date", "2026-03-17")
    assert (
        f"note       {fixture('arxiv.xml')}: --date 2026-03-17 ignored: its items carry their own dates\n"
        in (result.output)
    )
    assert read(root / "papers" / "2403.05678.md").metadata["published"] == dt.date(2024, 3, 5)


def test_every_field_a_candidate_carries_is_a_field_of_the_paper_schema() -> None:
    """A source's candidate may only carry what a paper file can hold (besides its own bookkeeping)."""
    import dataclasses

    from newsletter.content.schema import KEY_ORDER
    from newsletter.ingest.candidates import Candidate

    own = {"abstract", "source", "where"}  # the body, and where the candidate came from
    assert {f.name for f in dataclasses.fields(Candidate)} - own <= set(KEY_ORDER)
