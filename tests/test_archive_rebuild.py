"""The archive's quick rebuild: the index of what pages were made from, and when it must not be trusted."""

from __future__ import annotations

import io
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.archive import rebuild, sources
from newsletter.archive.source_files import CACHED, SourceFiles, file_stats
from newsletter.archive.sources import index_path, load_index
from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.content.translations import original_hash
from newsletter.mail import locale
from tests.support.project import REPO, edit, make_newsletter
from tests.support.site import cli_build, example_newsletter, site_files

FIRST = "2024-01-10-first"
PAPER = "cjk-tokenizers"


def age(root: Path, seconds: int = 3600) -> None:
    """Date every content file an hour back, as files that were not just written (not "racy")."""
    for path in [*root.glob("papers/*"), *root.glob("issues/*")]:
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - seconds * 1_000_000_000))


class FullBuilds:
    """Counts the builds that read the whole library (the full, keyed way)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = rebuild.load_library

        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(rebuild, "load_library", counted)

    def taken(self) -> bool:
        """Whether a full build ran since the last call."""
        taken, self.count = self.count > 0, 0
        return taken


@pytest.fixture
def digest(tmp_path: Path) -> Path:
    root = make_newsletter(tmp_path)
    age(root)
    return root


@pytest.fixture
def full(monkeypatch: pytest.MonkeyPatch) -> FullBuilds:
    return FullBuilds(monkeypatch)


def fresh_build(root: Path, out: Path) -> dict[str, bytes]:
    """The site built from nothing into `out`: no content cache, no index (those of `root` are kept)."""
    build = load_settings(root).build_dir
    kept = build.with_name("build-kept")
    if build.exists():
        build.rename(kept)
    try:
        cli_build(root, "--out", str(out))
    finally:
        shutil.rmtree(build, ignore_errors=True)
        if kept.exists():
            kept.rename(build)
    return site_files(out)


def test_an_edited_introduction_renders_its_pages_without_reading_every_file(
    digest: Path, full: FullBuilds, tmp_path: Path
) -> None:
    cli_build(digest)
    assert full.taken()
    assert index_path(load_settings(digest), digest / "site").is_file()
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome back to the")
    # its page, the feeds carrying it and the index, which shows the start of its introduction
    assert cli_build(digest) == sorted(["feed.json", "feed.xml", "index.html", f"issues/{FIRST}/index.html"])
    assert not full.taken()
    assert "Welcome back to the" in (digest / "site" / f"issues/{FIRST}/index.html").read_text(
        encoding="utf-8"
    )
    assert cli_build(digest) == [] and not full.taken()
    assert site_files(digest / "site") == fresh_build(digest, tmp_path / "fresh")
    # the summary counts every page of the site, keyed or not
    edit(digest / "issues" / f"{FIRST}.md", "Welcome back to the", "Welcome again to the")
    result = CliRunner().invoke(main, ["--root", str(digest), "archive", "build"])
    pages = len(site_files(digest / "site")) - 1  # the manifest is not a page
    assert f": 4 written, {pages - 4} unchanged, 0 removed" in result.output


def test_an_edited_abstract_renders_the_pages_that_show_the_paper(
    digest: Path, full: FullBuilds, tmp_path: Path
) -> None:
    cli_build(digest)
    full.taken()
    edit(digest / "papers" / f"{PAPER}.md", "upvotes: 7", "upvotes: 7")  # touched, not changed
    assert cli_build(digest) == [] and not full.taken()
    page = (digest / "site" / f"papers/{PAPER}/index.html").read_text(encoding="utf-8")
    text = (digest / "papers" / f"{PAPER}.md").read_text(encoding="utf-8")
    body = text.split("---\n", 2)[2]
    (digest / "papers" / f"{PAPER}.md").write_text(text.replace(body, "A rewritten abstract.\n"), "utf-8")
    result = CliRunner().invoke(main, ["--root", str(digest), "archive", "build", "-v"])
    written = [line.split(None, 1)[1] for line in result.output.splitlines() if line.startswith("wrote")]
    assert not full.taken()
    # every page counted once, whether keyed again (the tag's page: same bytes) or not
    pages = len(site_files(digest / "site")) - 1  # the manifest is not a page
    assert f": {len(written)} written, {pages - len(written)} unchanged, 0 removed" in result.output
    assert set(written) <= {
        f"papers/{PAPER}/index.html",
        f"issues/{FIRST}/index.html",
        "tags/tokenization/index.html",
        "feed.xml",
        "feed.json",
    }
    assert {f"papers/{PAPER}/index.html", f"issues/{FIRST}/index.html", "feed.xml"} <= set(written)
    assert "A rewritten abstract." in (digest / "site" / f"papers/{PAPER}/index.html").read_text("utf-8")
    assert page != (digest / "site" / f"papers/{PAPER}/index.html").read_text("utf-8")
    assert site_files(digest / "site") == fresh_build(digest, tmp_path / "fresh")


def test_the_files_whose_stat_moved_are_found_among_many(tmp_path: Path) -> None:
    # 200 files: more than one block of the folder-wide comparison, edits at its edges
    names = [f"p{n:03d}.md" for n in range(200)]
    for name in names:
        (tmp_path / name).write_text(name, encoding="utf-8")
    files = SourceFiles()
    later = 10**19 - 1  # read long after every change: none is racy
    stats = file_stats(tmp_path, names)
    for n, name in enumerate(names):
        files.add("papers", name, files.stat_at(stats, n), later, "00" * 32, CACHED)
    assert files.moved("papers", file_stats(tmp_path, names)) == []
    for n in (0, 63, 64, 130, 199):
        (tmp_path / names[n]).write_text(names[n] + " edited", encoding="utf-8")
    os.utime(tmp_path / names[100], ns=(0, 10**9))  # touched: its times moved, not its size
    assert files.moved("papers", file_stats(tmp_path, names)) == [0, 63, 64, 100, 130, 199]
    # a file read in the tick of its last change is looked at again however its stat compares
    files.set("papers", names[5], files.stat_at(stats, 5), stats[5 * 4 + 2], "00" * 32)
    assert 5 in files.moved("papers", file_stats(tmp_path, names))
    (tmp_path / names[7]).unlink()
    with pytest.raises(rebuild.Stale):
        file_stats(tmp_path, names)


def test_a_sequence_of_quick_rebuilds_gives_the_bytes_of_a_build_from_nothing(
    digest: Path, full: FullBuilds, tmp_path: Path
) -> None:
    cli_build(digest)
    full.taken()
    issue = digest / "issues" / f"{FIRST}.md"
    paper = digest / "papers" / f"{PAPER}.md"
    original = issue.read_text(encoding="utf-8")
    steps = [
        (issue, "Welcome to the", "Welcome back to the"),
        (issue, 'preheader: "Three papers', 'preheader: "Three fine papers'),
        (paper, "upvotes: 7", "upvotes: 7\n"),
        (issue, "Welcome back to the", "Welcome to the"),
    ]
    for path, old, new in steps:
        edit(path, old, new)
        cli_build(digest)
        assert not full.taken(), (old, new)
        # nothing changed since: the site's structure is not even unpickled, and the
        # journal's changes to it are carried to the next run that reads it
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sources, "_structure", lambda *args: pytest.fail("structure read"))
            assert cli_build(digest) == [] and not full.taken()
    issue.write_text(original, encoding="utf-8")
    cli_build(digest)
    assert not full.taken()
    assert site_files(digest / "site") == fresh_build(digest, tmp_path / "fresh")
    # the journal beside the index carries the edits to the next run
    assert index_path(load_settings(digest), digest / "site").with_suffix(".journal").is_file()
    full.taken()  # the build from nothing
    assert cli_build(digest) == [] and not full.taken()


@pytest.mark.parametrize(
    "change",
    [
        "subject",  # shown on the index, its neighbours' pages, its papers' pages
        "status",  # a draft leaves the site
        "paper-tags",  # decides which papers an issue's rules pick, and the tag pages
        "new-issue",
        "new-issue-folder-time-kept",
        "removed-paper",
        "settings",
        "template",
        "freeze-record",
        "broken-paper",
    ],
)
def test_what_the_index_cannot_follow_is_built_in_full(
    digest: Path, full: FullBuilds, tmp_path: Path, change: str
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    edit(digest / "newsletter.toml", (REPO / "templates").as_posix(), templates.as_posix())
    age(digest)
    cli_build(digest)
    full.taken()
    issue = digest / "issues" / f"{FIRST}.md"
    if change == "subject":
        edit(issue, "Test Digest #1 —", "Test Digest No. 1 —")
    elif change == "status":
        edit(issue, "status: published", "status: draft")
    elif change == "paper-tags":
        edit(digest / "papers" / f"{PAPER}.md", "tokenization", "tokenizers")
    elif change == "new-issue":
        (digest / "issues" / "2024-02-07-later.md").write_text(
            '---\ntitle: "Later"\nsubject: "Test Digest later"\ndate: 2024-02-07\nnumber: 9\n'
            f"status: published\ninclude: [{PAPER}]\n---\nLater.\n",
            encoding="utf-8",
        )
    elif change == "new-issue-folder-time-kept":  # its ctime still moves
        folder = (digest / "issues").stat()
        (digest / "issues" / "2024-02-07-later.md").write_text(
            '---\ntitle: "Later"\nsubject: "Test Digest later"\ndate: 2024-02-07\nnumber: 9\n'
            f"status: published\ninclude: [{PAPER}]\n---\nLater.\n",
            encoding="utf-8",
        )
        os.utime(digest / "issues", ns=(folder.st_atime_ns, folder.st_mtime_ns))
    elif change == "removed-paper":
        (digest / "papers" / f"{PAPER}.md").unlink()  # picked by the first issue's rules
    elif change == "settings":
        edit(digest / "newsletter.toml", 'name = "', 'name = "The ')
    elif change == "template":
        edit(templates / "site" / "issue.html.j2", "{% block main %}", "{% block main %}<p>Edited.</p>")
    elif change == "freeze-record":
        (digest / "issues" / f"{FIRST}.sent.toml").write_text("not = [a freeze record\n", encoding="utf-8")
    elif change == "broken-paper":
        (digest / "papers" / f"{PAPER}.md").write_text("---\nid: [unclosed\n---\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--root", str(digest), "archive", "build"])
    assert full.taken()
    if change in ("freeze-record", "broken-paper"):
        assert result.exit_code == 1 and "Traceback" not in result.output
        return
    assert result.exit_code == 0, result.output
    assert site_files(digest / "site") == fresh_build(digest, tmp_path / "fresh")


def test_a_new_babel_release_is_built_in_full(
    digest: Path, full: FullBuilds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # its CLDR data decides dates and language names: the index knows Babel by the file naming its version
    cli_build(digest)
    full.taken()
    assert cli_build(digest) == [] and not full.taken()
    known = sources._babel_release()
    assert b"__version__" in known
    monkeypatch.setattr(
        sources, "_babel_release", lambda: known.replace(b"__version__", b"__version__ = '0.1'  #")
    )
    cli_build(digest)
    assert full.taken()
    assert cli_build(digest) == [] and not full.taken()


def forged_structure(path: Path, structure: dict | None = None) -> dict:
    """The site's structure an index holds; with `structure`, the index rewritten to hold it, hash and all."""
    data = pickle.load(io.BytesIO(path.read_bytes().partition(b"\n")[2]))
    if structure is not None:
        data["structure"] = pickle.dumps(structure)
        forged = pickle.dumps(data)
        path.write_bytes(__import__("hashlib").sha256(forged).hexdigest().encode() + b"\n" + forged)
    return pickle.loads(data["structure"])


class Boom:
    def __reduce__(self):  # what a tampered index would hold: a call on unpickling
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("what", ["garbage", "hash", "class", "journal", "journal-class", "wrong-shape"])
def test_a_damaged_or_tampered_index_is_never_trusted(
    digest: Path, full: FullBuilds, tmp_path: Path, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli_build(digest)
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome back to the")
    cli_build(digest)  # quick: writes a journal
    full.taken()
    path = index_path(load_settings(digest), digest / "site")
    journal = path.with_suffix(".journal")
    check, _, body = path.read_bytes().partition(b"\n")
    if what == "garbage":
        path.write_bytes(b"not an index")
    elif what == "hash":  # a hand edit: the payload no longer matches its hash
        path.write_bytes(check + b"\n" + body.replace(FIRST.encode(), FIRST[::-1].encode()))
    elif what == "class":
        evil = pickle.dumps({"version": Boom()})
        path.write_bytes(__import__("hashlib").sha256(evil).hexdigest().encode() + b"\n" + evil)
    elif what == "journal":
        journal.write_bytes(journal.read_bytes()[:-5])
    elif what == "journal-class":
        evil = pickle.dumps({"base": Boom()})
        journal.write_bytes(__import__("hashlib").sha256(evil).hexdigest().encode() + b"\n" + evil)
    elif what == "wrong-shape":
        structure = forged_structure(path)
        structure["papers_of"] = {FIRST: ("no-such-paper",)}
        forged_structure(path, structure)
    edit(digest / "issues" / f"{FIRST}.md", "Welcome back to the", "Welcome again to the")
    cli_build(digest)
    assert not (tmp_path / "pwned").exists()
    if what != "wrong-shape":  # a forged but well-formed index is beyond what a hash can tell
        assert full.taken()
        assert site_files(digest / "site") == fresh_build(digest, tmp_path / "fresh")
    load_index(path)  # written again, readable


def test_compiled_catalogues_are_kept_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    templates = REPO / "templates"
    expected = locale.chrome(templates, "de").strings()
    kept = tmp_path / "catalogues"
    assert locale.chrome(templates, "de", kept).strings() == expected
    (compiled,) = kept.glob("*.mo")

    def no_babel(*args):
        raise AssertionError("compiled again")

    monkeypatch.setattr(locale, "_compiled", no_babel)
    assert locale.chrome(templates, "de", kept).strings() == expected  # from the kept file
    compiled.write_bytes(compiled.read_bytes()[:-10])  # cut short: never used
    monkeypatch.undo()
    assert locale.chrome(templates, "de", kept).strings() == expected
    check, _, mo = compiled.read_bytes().partition(b"\n")
    assert check.decode() == __import__("hashlib").sha256(mo).hexdigest()


def test_a_folder_whose_stat_is_unchanged_is_not_listed_and_one_whose_stat_moved_is(
    digest: Path, full: FullBuilds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no change is "racy" here: the folders were made a moment ago, which would list them anyway
    monkeypatch.setattr(rebuild, "RACY_NS", -(10**12))
    cli_build(digest)
    full.taken()
    listed: list[str] = []
    real_listdir = os.listdir
    monkeypatch.setattr(rebuild.os, "listdir", lambda path: listed.append(str(path)) or real_listdir(path))
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome back to the")
    assert f"issues/{FIRST}/index.html" in cli_build(digest)
    assert not full.taken() and listed == []
    # a new file with the folder's mtime set back: its ctime still moved, so it is listed
    folder = (digest / "issues").stat()
    (digest / "issues" / "2024-02-07-later.md").write_text(
        '---\ntitle: "Later"\nsubject: "Test Digest later"\ndate: 2024-02-07\nnumber: 9\n'
        f"status: published\ninclude: [{PAPER}]\n---\nLater.\n",
        encoding="utf-8",
    )
    os.utime(digest / "issues", ns=(folder.st_atime_ns, folder.st_mtime_ns))
    assert "issues/2024-02-07-later/index.html" in cli_build(digest)
    assert str(digest / "issues") in listed and full.taken()


# ---------------------------------------------------------------------------
# A site with translations: the example newsletter, its issue #1 in Arabic and German

SLUG = "2026-03-17-multilingual-llms"  # English, translated into Arabic and German, frozen
ARABIC = "2026-03-24-translation-ar"  # written in Arabic, untranslated
SURVEY = "multilingual-large-language-models-a-systematic-survey"  # one of issue #1's papers


@pytest.fixture
def example(tmp_path: Path) -> Path:
    root = example_newsletter(tmp_path / "example")
    age(root)
    return root


def retranslated(root: Path, name: str) -> None:
    """Record in a translation that it was made from its original as the original is now."""
    path = root / name
    original = path.with_name(path.name.split(".")[0] + ".md")
    if "papers" in name:
        original = path.with_name(path.name.rsplit(".", 2)[0] + ".md")
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^translated_from: .*$", f"translated_from: {original_hash(original)}", text)
    path.write_text(text, encoding="utf-8")


def translate_paper(root: Path, pid: str, language: str, body: str) -> Path:
    path = root / "papers" / f"{pid}.{language}.md"
    made_from = original_hash(root / "papers" / f"{pid}.md")
    path.write_text(f"---\ntranslated_from: {made_from}\n---\n{body}", encoding="utf-8")
    return path


def test_an_edited_translation_renders_only_its_own_pages(
    example: Path, full: FullBuilds, tmp_path: Path
) -> None:
    cli_build(example)
    assert full.taken()
    assert index_path(load_settings(example), example / "site").is_file()
    german = example / "issues" / f"{SLUG}.de.md"
    # its page, its language's feeds, and its language's index, which shows its excerpt
    edit(german, "Willkommen zur ersten Ausgabe", "Willkommen zur allerersten Ausgabe")
    assert cli_build(example) == [
        "de/feed.json",
        "de/feed.xml",
        "de/index.html",
        f"de/issues/{SLUG}/index.html",
    ]
    assert not full.taken()
    page = (example / "site" / f"de/issues/{SLUG}/index.html").read_text(encoding="utf-8")
    assert "Willkommen zur allerersten Ausgabe" in page
    # the preheader: the page's description and the feeds' summary, not the index
    edit(german, 'preheader: "Überblicksartikel,', 'preheader: "Zwei Überblicksartikel,')
    assert cli_build(example) == ["de/feed.json", "de/feed.xml", f"de/issues/{SLUG}/index.html"]
    assert not full.taken()
    assert "Zwei Überblicksartikel," in (example / "site" / "de/feed.xml").read_text(encoding="utf-8")
    assert cli_build(example) == [] and not full.taken()
    assert site_files(example / "site") == fresh_build(example, tmp_path / "fresh")


def test_an_edited_original_renders_the_pages_that_show_it_in_every_language(
    example: Path, full: FullBuilds, tmp_path: Path
) -> None:
    cli_build(example)
    full.taken()
    # an issue written in Arabic, untranslated: the root's feeds and Arabic's carry it, and
    # every index shows it (German's too: it cannot be read in German)
    edit(example / "issues" / f"{ARABIC}.md", "أهلًا بكم في العدد الثاني", "أهلًا وسهلًا بكم في العدد الثاني")
    assert cli_build(example) == [
        "ar/feed.json",
        "ar/feed.xml",
        "ar/index.html",
        "de/index.html",
        "feed.json",
        "feed.xml",
        "index.html",
        f"issues/{ARABIC}/index.html",
    ]
    assert not full.taken()
    # an edited original makes its translations stale: the full build warns of them
    original = example / "issues" / f"{SLUG}.md"
    edit(original, "Welcome to the first issue", "Welcome to the very first issue")
    result = CliRunner().invoke(main, ["--root", str(example), "archive", "build"])
    assert result.exit_code == 0 and "translated_from" in result.output
    assert full.taken()
    for language in ("ar", "de"):
        retranslated(example, f"issues/{SLUG}.{language}.md")
    cli_build(example)
    assert full.taken()  # the stale build kept no index
    # the original and its translations' records edited together: the translations show
    # their own introductions, so only the original's pages change
    edit(original, "Welcome to the very first issue", "Welcome to the first issue")
    for language in ("ar", "de"):
        retranslated(example, f"issues/{SLUG}.{language}.md")
    assert cli_build(example) == ["feed.json", "feed.xml", "index.html", f"issues/{SLUG}/index.html"]
    assert not full.taken()
    assert site_files(example / "site") == fresh_build(example, tmp_path / "fresh")


def test_an_edited_paper_or_paper_translation_renders_the_versions_that_show_it(
    example: Path, full: FullBuilds, tmp_path: Path
) -> None:
    translate_paper(example, SURVEY, "de", "Ein Überblick über mehrsprachige Sprachmodelle.\n")
    cli_build(example)
    assert full.taken()
    german = example / "papers" / f"{SURVEY}.de.md"
    # the German version of the issue shows the translation; no page in another language does
    edit(german, "Ein Überblick", "Ein systematischer Überblick")
    assert cli_build(example) == ["de/feed.json", "de/feed.xml", f"de/issues/{SLUG}/index.html"]
    assert not full.taken()
    assert "Ein systematischer Überblick" in (example / "site" / f"de/issues/{SLUG}/index.html").read_text(
        encoding="utf-8"
    )
    # the original's abstract: its page, and every version showing it (not the German one,
    # which shows its translation's; it would show the original's editor's note, which has none)
    edit(example / "papers" / f"{SURVEY}.md", "This paper provides a", "This paper gives a")
    retranslated(example, f"papers/{SURVEY}.de.md")
    written = cli_build(example)
    assert not full.taken()
    shown = {
        f"papers/{SURVEY}/index.html",
        f"issues/{SLUG}/index.html",
        "feed.xml",
        "feed.json",
        f"ar/issues/{SLUG}/index.html",
        "ar/feed.xml",
        "ar/feed.json",
    }
    tags = {f"tags/{tag}/index.html" for tag in ("survey", "evaluation", "alignment")}  # keyed, same bytes
    assert shown <= set(written) <= shown | tags
    assert "This paper gives a" in (example / "site" / f"ar/issues/{SLUG}/index.html").read_text("utf-8")
    assert site_files(example / "site") == fresh_build(example, tmp_path / "fresh")


@pytest.mark.parametrize(
    "change",
    [
        "translation-subject",  # the index of its language, its neighbours' pages
        "translation-title",
        "translation-added",
        "translation-removed",
        "stale-translation",
        "paper-translation-title",
        "broken-translation",
    ],
)
def test_what_the_index_cannot_follow_of_translations_is_built_in_full(
    example: Path, full: FullBuilds, tmp_path: Path, change: str
) -> None:
    translate_paper(example, SURVEY, "de", "Ein Überblick.\n")
    cli_build(example)
    full.taken()
    german = example / "issues" / f"{SLUG}.de.md"
    if change == "translation-subject":
        edit(german, "#1: 45 Artikel", "Nr. 1: 45 Artikel")
    elif change == "translation-title":
        edit(german, 'title: "Jenseits', 'title: "Weit jenseits')
    elif change == "translation-added":
        (example / "issues" / f"{ARABIC}.de.md").write_text(
            f'---\nsubject: "Ausgabe 2"\ntranslated_from: {original_hash(example / "issues" / f"{ARABIC}.md")}\n'
            "---\nÜbersetzung.\n",
            encoding="utf-8",
        )
    elif change == "translation-removed":
        german.unlink()
    elif change == "stale-translation":
        edit(german, "translated_from: 113841a1db77", "translated_from: 000000000000")
    elif change == "paper-translation-title":
        edit(
            example / "papers" / f"{SURVEY}.de.md",
            "---\ntranslated_from",
            "---\ntitle: Ein Überblick\ntranslated_from",
        )
    elif change == "broken-translation":
        edit(german, "preheader:", "date: 2026-03-18\npreheader:")
    result = CliRunner().invoke(main, ["--root", str(example), "archive", "build"])
    assert full.taken()
    if change == "broken-translation":
        assert result.exit_code == 1 and "unknown field in a translation" in result.output
        return
    assert result.exit_code == 0, result.output
    assert site_files(example / "site") == fresh_build(example, tmp_path / "fresh")


def test_quick_rebuilds_of_translations_give_the_bytes_of_a_build_from_nothing(
    example: Path, full: FullBuilds, tmp_path: Path
) -> None:
    translate_paper(example, SURVEY, "ar", "نظرة عامة.\n\nNote: ملاحظة المحرر.\n")
    cli_build(example)
    full.taken()
    arabic = example / "issues" / f"{SLUG}.ar.md"
    german = example / "issues" / f"{SLUG}.de.md"
    paper = example / "papers" / f"{SURVEY}.ar.md"
    steps = [
        (arabic, "\n---\n", "\n---\nمقدمة جديدة.\n\n"),
        (german, "Willkommen zur", "Herzlich willkommen zur"),
        (paper, "نظرة عامة.", "نظرة عامة موسعة."),
        (example / "issues" / f"{ARABIC}.md", "أهلًا بكم", "مرحبًا بكم"),
        (german, "Herzlich willkommen zur", "Willkommen zur"),
    ]
    for path, old, new in steps:
        edit(path, old, new)
        assert cli_build(example), (old, new)
        assert not full.taken(), (old, new)
    assert site_files(example / "site") == fresh_build(example, tmp_path / "fresh")
    full.taken()  # the build from nothing
    assert cli_build(example) == [] and not full.taken()


def test_a_forged_translation_record_is_never_trusted(
    example: Path, full: FullBuilds, tmp_path: Path
) -> None:
    cli_build(example)
    full.taken()
    path = index_path(load_settings(example), example / "site")
    structure = forged_structure(path)
    key = f"issues/{SLUG}.de.md"
    original, language, words, made_from = structure["translations"][key]
    assert words["subject"].startswith("Multilingual LLM Digest #1")  # what the index keeps of it
    structure["translations"][key] = (original, language, list(words.items()), made_from)
    forged_structure(path, structure)
    edit(example / "issues" / f"{SLUG}.de.md", "Willkommen zur", "Herzlich willkommen zur")
    cli_build(example)
    assert full.taken()
    assert site_files(example / "site") == fresh_build(example, tmp_path / "fresh")
