"""Archives of many issues: the content cache, paged feeds (RFC 5005), byte-identical rebuilds."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest

from newsletter.archive import pages as pages_module
from newsletter.archive import workers as workers_module
from newsletter.archive.site import COMPILED_TEMPLATES, MANIFEST, build_site
from newsletter.config import load_settings
from newsletter.content import cache as cache_module
from newsletter.content.cache import CACHE_DIR, RACY_NS, ContentCache
from newsletter.content.fragments import FRAGMENTS_DIR
from newsletter.content.library import load_library
from newsletter.errors import NewsletterError
from tests.support.project import REPO, edit, make_newsletter
from tests.support.site import cli_build, site_files

BASE = "https://example.org/digest/"
FIRST = "2024-01-10-first"
PAPER = "cjk-tokenizers"
HISTORY_NS = "http://purl.org/syndication/history/1.0"


def add_issues(root: Path, count: int, start: int = 2) -> list[str]:
    """`count` more published issues in January-February 2023 (before the fixture's), oldest first."""
    slugs = []
    for n in range(start, start + count):
        slug = f"2023-{1 + n // 28:02d}-{1 + n % 28:02d}-extra-{n}"
        (root / "issues" / f"{slug}.md").write_text(
            f'---\ntitle: "Extra {n}"\nsubject: "Test Digest extra #{n}"\ndate: {slug[:10]}\n'
            f"number: {100 + n}\nstatus: published\ninclude: [2401.00001]\n---\nExtra issue {n}.\n",
            encoding="utf-8",
        )
        slugs.append(slug)
    return slugs


@pytest.fixture
def digest(tmp_path: Path) -> Path:
    return make_newsletter(tmp_path)


@pytest.fixture
def paged(tmp_path: Path) -> Path:
    """The fixture newsletter with 7 more published issues (8 in all) and feeds of 3 issues."""
    root = make_newsletter(tmp_path, extra_toml="\n[archive]\nfeed_size = 3\n")
    add_issues(root, 7)
    return root


def age(root: Path, seconds: int = 3600) -> None:
    """Date every content file an hour back, as files that were not just written (not "racy")."""
    for path in [*root.glob("papers/*.md"), *root.glob("issues/*.md")]:
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - seconds * 1_000_000_000))


# -- the content cache ----------------------------------------------------------------------


def test_the_cache_parses_only_changed_files(digest: Path) -> None:
    settings = load_settings(digest)
    files = len(list(digest.glob("papers/*.md"))) + len(list(digest.glob("issues/*.md")))
    first = ContentCache.for_settings(settings)
    fresh = load_library(settings, cache=first)
    assert first.reads == files
    assert sorted((settings.build_dir / CACHE_DIR).iterdir()) == shards(settings)

    again = ContentCache.for_settings(settings)
    cached = load_library(settings, cache=again)
    assert again.reads == 0
    assert cached == fresh  # every paper and issue, field for field

    edit(digest / "papers" / f"{PAPER}.md", "upvotes: 7", "upvotes: 8")
    (digest / "issues" / "2024-01-17-arabic.md").unlink()
    third = ContentCache.for_settings(settings)
    changed = load_library(settings, cache=third)
    assert third.reads == 1
    assert changed.papers[PAPER].upvotes == 8
    assert [i.slug for i in changed.issues] == [FIRST]
    assert len(third.used) == files - 1  # the deleted file left the cache


def shards(settings) -> list[Path]:
    """The cache's files: one per content folder and share of its file names that holds a file."""
    cache = ContentCache.for_settings(settings)
    files = [*settings.papers_dir.glob("*.md"), *settings.issues_dir.glob("*.md")]
    return sorted({cache.shard(str(path)) for path in files})


def test_an_edited_issue_rewrites_only_its_cache_file(digest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(digest)
    later = time.time_ns() + 3600 * 1_000_000_000
    monkeypatch.setattr(cache_module, "_now", lambda: later)  # read well after every change: none is racy
    load_library(settings, cache=ContentCache.for_settings(settings))
    cache = ContentCache.for_settings(settings)
    issues_file = cache.shard(str(digest / "issues" / f"{FIRST}.md"))
    before = {path: (path.read_bytes(), path.stat().st_ino) for path in shards(settings)}
    assert issues_file in before and len(before) > 2
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome back to the")
    cache = ContentCache.for_settings(settings)
    assert load_library(settings, cache=cache).issue(FIRST).intro.startswith("Welcome back to the")
    assert cache.reads == 1
    for path, (data, inode) in before.items():  # the others are not rewritten
        assert (path.read_bytes() == data and path.stat().st_ino == inode) is (path != issues_file)
    again = ContentCache.for_settings(settings)
    assert load_library(settings, cache=again).issue(FIRST).intro.startswith("Welcome back to the")
    assert again.reads == 0


def test_an_edit_that_keeps_size_and_mtime_is_seen(digest: Path) -> None:
    """The same size and the same mtime to the nanosecond, right after a read: the hash decides."""
    settings = load_settings(digest)
    paper = digest / "papers" / f"{PAPER}.md"
    load_library(settings, cache=ContentCache.for_settings(settings))
    before = paper.stat()
    edit(paper, "upvotes: 7", "upvotes: 9")
    os.utime(paper, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (paper.stat().st_size, paper.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    cache = ContentCache.for_settings(settings)
    assert load_library(settings, cache=cache).papers[PAPER].upvotes == 9
    assert cache.reads == 1


def test_files_well_older_than_their_read_are_trusted_by_their_stat(
    digest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(digest)
    later = time.time_ns() + 3600 * 1_000_000_000
    monkeypatch.setattr(cache_module, "_now", lambda: later)  # read an hour after the last change
    load_library(settings, cache=ContentCache.for_settings(settings))
    cache = ContentCache.for_settings(settings)
    paper = str(digest / "papers" / f"{PAPER}.md")
    stat, read_ns = cache.entries[paper][:2]
    assert max(stat[1], stat[2]) + RACY_NS < read_ns  # not racy: no hash needed next time
    load_library(settings, cache=cache)
    assert cache.reads == 0 and not cache.changed  # and the cache file is not rewritten

    # ...until the stat differs: a same-size edit is hashed, then parsed
    edit(digest / "papers" / f"{PAPER}.md", "upvotes: 7", "upvotes: 6")
    cache = ContentCache.for_settings(settings)
    assert load_library(settings, cache=cache).papers[PAPER].upvotes == 6 and cache.reads == 1


def test_problems_and_warnings_come_back_from_the_cache(digest: Path) -> None:
    settings = load_settings(digest)
    edit(digest / "papers" / f"{PAPER}.md", "upvotes: 7", "upvotes: 7\nmood: sunny")
    first = load_library(settings, cache=ContentCache.for_settings(settings))
    bad = digest / "papers" / "broken.md"
    bad.write_text("---\nid: broken\ntitle: [unclosed\n---\nText.\n", encoding="utf-8")
    for _ in range(2):  # the second time from the cache: the same error, never a silent skip
        cache = ContentCache.for_settings(settings)
        with pytest.raises(Exception) as raised:
            load_library(settings, cache=cache)
        assert "papers/broken.md" in str(raised.value)
    bad.unlink()
    cache = ContentCache.for_settings(settings)
    problems: list = []
    from newsletter.content.library import load_papers

    load_papers(settings, problems, cache)
    assert cache.reads == 0
    assert [(p.where, p.field, p.warning) for p in problems] == [(f"papers/{PAPER}.md", "mood", True)]
    assert first.papers[PAPER].upvotes == 7


class Boom:
    def __reduce__(self):  # what a tampered cache would hold: a call on unpickling
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize(
    "content",
    [
        b"not a pickle at all",
        b"\x80\x05\x95",  # a truncated pickle
        pickle.dumps({"salt": "an older version", "entries": {"x": 1}, "folder": "x", "shard": 0}),
        pickle.dumps([1, 2, 3]),
        pickle.dumps({"salt": None, "entries": Boom()}),
    ],
    ids=["garbage", "truncated", "older-version", "not-a-mapping", "tampered"],
)
def test_a_corrupt_or_foreign_cache_is_ignored(
    digest: Path, content: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(digest)
    settings = load_settings(digest)
    expected = load_library(settings)
    for path in shards(settings):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    cache = ContentCache.for_settings(settings)
    assert cache.entries == {}
    assert load_library(settings, cache=cache) == expected
    assert cache.reads == len(expected.papers) + len(expected.issues)
    assert not (digest / "pwned").exists()
    assert ContentCache.for_settings(settings).entries  # rebuilt, and readable again


def test_a_cached_entry_of_the_wrong_shape_is_read_again(digest: Path) -> None:
    settings = load_settings(digest)
    load_library(settings, cache=ContentCache.for_settings(settings))
    wrong = 0
    for path in shards(settings):
        data = pickle.load(io.BytesIO(path.read_bytes()))
        for key in data["entries"]:
            data["entries"][key] = ("wrong",)
            wrong += 1
        path.write_bytes(pickle.dumps(data))
    cache = ContentCache.for_settings(settings)
    assert load_library(settings, cache=cache) == load_library(settings)
    assert cache.reads == wrong


def page_keys(root: Path) -> dict[str, str]:
    """Each page's key of its inputs, as the manifest records it."""
    files = json.loads((root / "site" / MANIFEST).read_text(encoding="utf-8"))["files"]
    return {path: record["key"] for path, record in files.items()}


def rekeyed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The pages whose inputs changed between two builds (the ones the second build rendered)."""
    return sorted(path for path, key in after.items() if before.get(path) != key)


def test_editing_one_paper_changes_exactly_its_pages_and_the_feeds(digest: Path) -> None:
    age(digest)
    assert len(cli_build(digest)) == 17
    assert cli_build(digest) == []
    before = page_keys(digest)
    edit(digest / "papers" / f"{PAPER}.md", "upvotes: 7", "upvotes: 8")
    assert cli_build(digest) == sorted(
        [f"issues/{FIRST}/index.html", f"papers/{PAPER}/index.html", "feed.xml", "feed.json"]
    )
    assert "8" in (digest / "site" / f"papers/{PAPER}/index.html").read_text()
    # rendered again: the pages that show the paper (its tag's lists it, unchanged bytes) and
    # the feeds; not the index, which lists issues, not papers
    assert rekeyed(before, page_keys(digest)) == sorted(
        [
            f"issues/{FIRST}/index.html",
            f"papers/{PAPER}/index.html",
            "tags/tokenization/index.html",
            "feed.xml",
            "feed.json",
        ]
    )
    assert cli_build(digest) == []


def test_the_index_is_rendered_again_only_when_what_it_shows_changes(digest: Path) -> None:
    tail = " ".join(["More about this week's papers."] * 12)  # past the index's excerpt (300 characters)
    edit(digest / "issues" / f"{FIRST}.md", "<b>feedback</b>.", f"<b>feedback</b>. {tail}")
    age(digest)
    cli_build(digest)
    before = page_keys(digest)
    # past the excerpt the index shows of the introduction: the issue's page and feeds only
    edit(digest / "issues" / f"{FIRST}.md", "More about this week's papers.\n", "More about these papers.\n")
    assert cli_build(digest) == sorted([f"issues/{FIRST}/index.html", "feed.xml", "feed.json"])
    assert "index.html" not in rekeyed(before, page_keys(digest))
    # its subject is on the index (and on the pages of its neighbours)
    before = page_keys(digest)
    edit(digest / "issues" / f"{FIRST}.md", "Test Digest #1 —", "Test Digest No. 1 —")
    assert "index.html" in cli_build(digest)
    assert "index.html" in rekeyed(before, page_keys(digest))
    assert "Test Digest No. 1" in (digest / "site" / "index.html").read_text(encoding="utf-8")
    # ...and on the pages of its papers and their tags ("featured in")
    assert "Test Digest No. 1" in (digest / "site" / f"papers/{PAPER}/index.html").read_text(encoding="utf-8")
    assert "Test Digest No. 1" in (digest / "site" / "tags/tokenization/index.html").read_text(
        encoding="utf-8"
    )


def test_the_sitemap_is_rendered_again_only_when_a_page_comes_goes_or_changes_date(digest: Path) -> None:
    age(digest)
    cli_build(digest)
    before = page_keys(digest)
    edit(digest / "papers" / f"{PAPER}.md", "upvotes: 7", "upvotes: 8")
    cli_build(digest)
    assert "sitemap.xml" not in rekeyed(before, page_keys(digest))
    (slug,) = add_issues(digest, 1)
    assert "sitemap.xml" in cli_build(digest)
    assert f"<loc>{BASE}issues/{slug}/</loc><lastmod>{slug[:10]}</lastmod>" in (
        digest / "site" / "sitemap.xml"
    ).read_text(encoding="utf-8")


def test_page_keys_follow_the_code_of_every_module(
    digest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change to plural rules (mail/locale.py) or URLs (content/issues.py) renders the pages again."""
    package = tmp_path / "newsletter"
    shutil.copytree(pages_module.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    cli_build(digest)
    before = page_keys(digest)
    for module in ("mail/locale.py", "content/issues.py"):
        original = pages_module.source_digest(package)
        with (package / module).open("a", encoding="utf-8") as handle:
            handle.write("\n# a change\n")
        assert pages_module.source_digest.__wrapped__(package) != original, module
        pages_module.source_digest.cache_clear()
    monkeypatch.setattr(pages_module, "PACKAGE", package)
    assert cli_build(digest) == []  # the same bytes: rendered again, written never
    after = page_keys(digest)
    assert after.keys() == before.keys()
    assert all(after[path] != key for path, key in before.items() if key not in (None, "css"))


def test_a_build_that_changes_nothing_leaves_the_manifest_alone(digest: Path) -> None:
    cli_build(digest)
    manifest = digest / "site" / MANIFEST
    before = (manifest.read_bytes(), manifest.stat().st_ino, manifest.stat().st_mtime_ns)
    assert cli_build(digest) == []
    assert (manifest.read_bytes(), manifest.stat().st_ino, manifest.stat().st_mtime_ns) == before
    edit(digest / "papers" / f"{PAPER}.md", "upvotes: 7", "upvotes: 8")
    assert f"papers/{PAPER}/index.html" in cli_build(digest)
    recorded = json.loads(manifest.read_text(encoding="utf-8"))["files"][f"papers/{PAPER}/index.html"]
    page = (digest / "site" / f"papers/{PAPER}/index.html").read_bytes()
    assert recorded["sha256"] == hashlib.sha256(page).hexdigest() and recorded["size"] == len(page)


def test_an_edited_template_is_compiled_again(tmp_path: Path) -> None:
    """Compiled templates are kept between builds, and never used once their source changed."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    digest = make_newsletter(tmp_path / "news")
    edit(digest / "newsletter.toml", (REPO / "templates").as_posix(), templates.as_posix())
    age(digest)
    cli_build(digest)
    assert any((load_settings(digest).build_dir / COMPILED_TEMPLATES).iterdir())
    paper_template = templates / "site" / "paper.html.j2"
    paper_template.write_text(
        paper_template.read_text(encoding="utf-8").replace(
            "{% block main %}", "{% block main %}<p>Edited.</p>"
        ),
        encoding="utf-8",
    )
    written = cli_build(digest)
    assert f"papers/{PAPER}/index.html" in written
    assert "<p>Edited.</p>" in (digest / "site" / f"papers/{PAPER}/index.html").read_text(encoding="utf-8")


def test_a_tag_that_takes_another_tags_folder_moves_every_link_to_it(digest: Path) -> None:
    """'#tokenization' has the folder name of 'tokenization' (tag_segment), sorts first and takes it."""
    age(digest)
    cli_build(digest)
    assert 'href="../../tags/tokenization/"' in (digest / "site" / f"papers/{PAPER}/index.html").read_text()
    (digest / "papers" / "new-tokenizer.md").write_text(
        '---\nid: new-tokenizer\ntitle: "A new tokenizer"\ntags: ["#tokenization"]\n---\nAn abstract.\n',
        encoding="utf-8",
    )
    (digest / "issues" / "2024-02-07-later.md").write_text(
        '---\ntitle: "Later"\nsubject: "Test Digest later"\ndate: 2024-02-07\nnumber: 9\n'
        "status: published\ninclude: [new-tokenizer]\n---\nLater.\n",
        encoding="utf-8",
    )
    written = cli_build(digest)
    page = (digest / "site" / f"papers/{PAPER}/index.html").read_text()
    moved = re.search(r'href="\.\./\.\./(tags/tokenization-[0-9a-f]+/)"', page)
    assert moved and f"papers/{PAPER}/index.html" in written
    assert (digest / "site" / moved.group(1) / "index.html").is_file()
    assert "A new tokenizer" in (digest / "site" / "tags" / "tokenization" / "index.html").read_text()


def test_rebuilds_are_byte_identical_to_a_fresh_build(digest: Path, tmp_path: Path) -> None:
    """Through the cache, after an edit and its undoing: the same bytes as a build from nothing."""
    cli_build(digest)
    paper = digest / "papers" / f"{PAPER}.md"
    original = paper.read_text(encoding="utf-8")
    edit(paper, "upvotes: 7", "upvotes: 70")
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome back to the")
    cli_build(digest)
    paper.write_text(original, encoding="utf-8")
    edit(digest / "issues" / f"{FIRST}.md", "Welcome back to the", "Welcome to the")
    cli_build(digest)
    incremental = site_files(digest / "site")
    # a build from nothing: no site, no content cache (the manifest too is the same)
    shutil.rmtree(load_settings(digest).build_dir / "cache")
    cli_build(digest, "--out", str(tmp_path / "fresh"))
    assert site_files(tmp_path / "fresh") == incremental
    # and without the content cache at all: the same pages (the manifest keys papers by
    # fingerprints of their fields instead of the cache's digests of their files)
    build_site(load_library(load_settings(digest)), tmp_path / "uncached")
    uncached = site_files(tmp_path / "uncached")
    assert uncached.pop(MANIFEST) != incremental.pop(MANIFEST)
    assert uncached == incremental


# -- paged feeds ------------------------------------------------------------------------------


def links(parsed) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in parsed.feed.links}


def local(out: Path, url: str) -> Path:
    assert url.startswith(BASE), url
    path = out / url.removeprefix(BASE)
    assert path.is_file(), f"{url} does not resolve in the site"
    return path


def test_feeds_carry_the_newest_issues_and_archived_pages_the_rest(paged: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(load_library(load_settings(paged)), out)
    published = [i for i in load_library(load_settings(paged)).issues if i.published]
    assert len(published) == 8
    urls = [BASE + f"issues/{i.slug}/" for i in published]

    current = feedparser.parse((out / "feed.xml").read_bytes())
    assert not current.bozo, current.get("bozo_exception")
    assert [e.id for e in current.entries] == urls[-3:][::-1]  # the newest 3, newest first
    assert ElementTree.fromstring((out / "feed.xml").read_bytes()).find(f"{{{HISTORY_NS}}}archive") is None
    assert links(current)["self"] == BASE + "feed.xml"

    # walk back through the archive: feed.xml -> page 2 -> page 1, each linking current and its neighbours
    seen = [e.id for e in current.entries]
    page_url = links(current)["prev-archive"]
    assert page_url == BASE + "feeds/archive/2.xml"
    pages = []
    while page_url:
        path = local(out, page_url)
        page = feedparser.parse(path.read_bytes())
        assert not page.bozo, page.get("bozo_exception")
        assert ElementTree.fromstring(path.read_bytes()).find(f"{{{HISTORY_NS}}}archive") is not None
        found = links(page)
        assert found["self"] == page_url and found["current"] == BASE + "feed.xml"
        local(out, found["current"])
        if pages:
            assert found["next-archive"] == pages[-1]
        seen += [e.id for e in page.entries]
        pages.append(page_url)
        page_url = found.get("prev-archive")
    assert pages == [BASE + "feeds/archive/2.xml", BASE + "feeds/archive/1.xml"]
    assert "next-archive" not in links(feedparser.parse((out / "feeds/archive/2.xml").read_bytes()))
    assert sorted(seen) == sorted(urls) and len(seen) == len(set(seen))  # every issue exactly once
    oldest = feedparser.parse((out / "feeds/archive/1.xml").read_bytes())
    assert [e.id for e in oldest.entries] == urls[:3][::-1]
    assert oldest.feed.updated.startswith(published[2].date.isoformat())

    # JSON Feed: the same issues, chained by next_url from the newest page to the oldest
    feed = json.loads((out / "feed.json").read_text(encoding="utf-8"))
    items = [i["id"] for i in feed["items"]]
    assert items == urls[-3:][::-1]
    while "next_url" in feed:
        feed = json.loads(local(out, feed["next_url"]).read_text(encoding="utf-8"))
        items += [i["id"] for i in feed["items"]]
    assert items == urls[::-1]


def test_a_new_issue_leaves_full_archived_pages_alone(paged: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(load_library(load_settings(paged)), out)
    before = site_files(out)
    add_issues(paged, 1, start=20)  # 2023-01-21: newer than the extras, older than the fixture's issue
    report = build_site(load_library(load_settings(paged)), out)
    # 9 issues: feed.xml keeps the 3 newest; page 2 fills up (3), page 1 stays as it was
    assert "feeds/archive/1.xml" not in report.written and "feeds/archive/1.json" not in report.written
    assert site_files(out)["feeds/archive/1.xml"] == before["feeds/archive/1.xml"]
    assert {"feeds/archive/2.xml", "feeds/archive/2.json"} <= set(report.written)
    assert len(feedparser.parse((out / "feeds/archive/2.xml").read_bytes()).entries) == 3
    assert not (out / "feeds/archive/3.xml").exists()


def test_feeds_shrink_back_and_old_pages_are_removed(paged: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(load_library(load_settings(paged)), out)
    edit(paged / "newsletter.toml", "feed_size = 3", "feed_size = 20")
    report = build_site(load_library(load_settings(paged)), out)
    assert sorted(p for p in report.removed if p.startswith("feeds/")) == [
        "feeds/archive/1.json", "feeds/archive/1.xml", "feeds/archive/2.json", "feeds/archive/2.xml",
    ]  # fmt: skip
    assert not (out / "feeds").exists()
    assert len(feedparser.parse((out / "feed.xml").read_bytes()).entries) == 8


@pytest.mark.parametrize("value", ["0", '"ten"', "-3"])
def test_feed_size_must_be_a_positive_number(digest: Path, value: str) -> None:
    with (digest / "newsletter.toml").open("a", encoding="utf-8") as handle:
        handle.write(f"\n[archive]\nfeed_size = {value}\n")
    with pytest.raises(NewsletterError) as raised:
        load_settings(digest)
    assert "archive.feed_size: expected" in str(raised.value)


# -- worker processes ---------------------------------------------------------------------------

IN_WORKERS = """
import sys
from newsletter.archive import pages, workers
workers.PARALLEL_PAGES = 2  # a small site, rendered as a big one is
workers.os.sched_getaffinity = lambda pid: {0, 1, 2}  # three workers, whatever the machine has
import atexit
forked = []
fork = workers.os.fork
workers.os.fork = lambda: forked.append(1) or fork()
atexit.register(lambda: print(f"forked {len(forked)}", file=sys.stderr))  # the parent's exit only
if "--broken" in sys.argv:
    sys.argv.remove("--broken")
    def broken(self, paper):
        from newsletter.errors import NewsletterError
        raise NewsletterError(f"papers/{paper.id}.md: abstract: expected text, got a broken renderer")
    pages.SitePages.paper_page = broken
from newsletter.cli import main
main(sys.argv[1:])
"""


def build_in_workers(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`newsletter archive build -v` in a new process (one thread: it may fork), forced to use workers."""
    command = [sys.executable, "-c", IN_WORKERS, "--root", str(root), "archive", "build", "-v", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)


def test_a_build_in_worker_processes_gives_the_bytes_of_one_process(paged: Path, tmp_path: Path) -> None:
    """Forced on a small site: pages, manifest and the fragment cache as one process makes them."""
    settings = load_settings(paged)
    cli_build(paged, "--out", str(tmp_path / "one"))
    one = site_files(tmp_path / "one")
    fragments = {
        p.relative_to(settings.build_dir).as_posix(): p.read_bytes()
        for p in sorted((settings.build_dir / FRAGMENTS_DIR).rglob("*.pickle"))
    }
    shutil.rmtree(settings.build_dir)
    done = build_in_workers(paged, "--out", str(tmp_path / "many"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "forked 3" in done.stderr
    written = sorted(line.split(None, 1)[1] for line in done.stdout.splitlines() if line.startswith("wrote"))
    assert site_files(tmp_path / "many") == one
    assert written == sorted(one.keys() - {MANIFEST})
    assert {
        p.relative_to(settings.build_dir).as_posix(): p.read_bytes()
        for p in sorted((settings.build_dir / FRAGMENTS_DIR).rglob("*.pickle"))
    } == fragments
    # an edit afterwards: the same pages rendered again as in one process
    edit(paged / "papers" / f"{PAPER}.md", "upvotes: 7", "upvotes: 8")
    done = build_in_workers(paged, "--out", str(tmp_path / "many"))
    assert f"wrote      papers/{PAPER}/index.html" in done.stdout


def test_workers_take_whole_issues_in_chunks_the_costliest_pages_first(paged: Path) -> None:
    from newsletter.archive.crawlers import crawler_pages
    from newsletter.archive.feeds import feed_pages
    from newsletter.archive.keys import Memo

    site = pages_module.SitePages(load_library(load_settings(paged)), Memo({}))
    pages = feed_pages(site) + crawler_pages(site) + site.pages()
    order = workers_module.chunks(site, pages, list(range(len(pages))), 2)
    assert sorted(n for chunk in order for n in chunk) == list(range(len(pages)))  # each page once
    assert len(order) > 2  # more chunks than workers: whoever is done first takes the next
    chunk_of = {pages[n].path: k for k, chunk in enumerate(order) for n in chunk}
    for issue in site.issues:  # a paper's page with the issue's page that first shows it
        first = chunk_of[f"{issue.web_path}index.html"]
        for paper in site.papers_of[issue.slug]:
            if site.featured[paper.id][0] is issue:
                assert chunk_of[f"papers/{paper.id}/index.html"] == first
    tags = [chunk_of[site.tag_paths[tag] + "index.html"] for tag in site.tags]
    assert tags and max(tags) < min(chunk_of[f"{issue.web_path}index.html"] for issue in site.issues)


def test_an_error_in_a_worker_stops_the_build_with_its_message(paged: Path) -> None:
    done = build_in_workers(paged, "--broken")
    assert done.returncode == 1 and "forked 3" in done.stderr
    assert "expected text, got a broken renderer" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout


def test_a_process_with_other_threads_builds_in_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers_module.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(workers_module.threading, "active_count", lambda: 1)
    assert workers_module.workers(50_000) == 2
    monkeypatch.setattr(workers_module.threading, "active_count", lambda: 2)
    assert workers_module.workers(50_000) == 1
