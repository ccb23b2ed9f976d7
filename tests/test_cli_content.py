"""The build, check and issue commands, and every command's help, through the real CLI."""

from __future__ import annotations

import email
import importlib
import re
from email import policy

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import COMMANDS, main
from newsletter.config import load_settings
from newsletter.content.issues import read_issue
from newsletter.content.library import load_library
from tests.support.project import GOOD, REPO, copy_newsletter, run

FILES = ("email.html", "email.txt", "preview.eml")


@pytest.mark.parametrize(
    "ref", ["2024-01-10-first", "issues/2024-01-10-first.md", str(GOOD / "issues" / "2024-01-10-first.md")]
)
def test_build_writes_the_three_files(tmp_path, ref):
    out = tmp_path / "out"
    result = run(GOOD, "build", ref, "--out", str(out))
    assert result.exit_code == 0, result.output
    folder = out / "2024-01-10-first"
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    html_kb = len((folder / "email.html").read_bytes()) / 1024
    assert result.output == f"2024-01-10-first: 3 papers, HTML {html_kb:.1f} KB -> {folder}/\n"
    assert re.search("%%UNSUBSCRIBE_URL-[0-9a-f]{16}%%", (folder / "email.html").read_text())  # markers kept
    assert re.search("%%GREETING-[0-9a-f]{16}%%", (folder / "email.txt").read_text())
    msg = email.message_from_bytes((folder / "preview.eml").read_bytes(), policy=policy.default)
    assert msg["To"] == "Ada Lovelace <reader@example.org>"
    assert "https://example.org/api/u/preview-token" in msg.get_body(("plain",)).get_content()


def test_build_twice_leaves_identical_files(tmp_path):
    out = tmp_path / "out"
    run(GOOD, "build", "--all", "--out", str(out))
    first = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    run(GOOD, "build", "--all", "--out", str(out))
    second = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert first == second
    assert sorted(str(p) for p in first) == sorted(
        f"{slug}/{name}" for slug in ("2024-01-10-first", "2024-01-17-arabic") for name in FILES
    )


def test_build_defaults_to_the_build_folder(tmp_path, monkeypatch):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    result = run(root, "build", "2024-01-17-arabic", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert result.output == "2024-01-17-arabic: 1 paper, HTML " + result.output.split("HTML ")[1]
    assert result.output.endswith("-> build/2024-01-17-arabic/\n")
    assert all((root / "build" / "2024-01-17-arabic" / name).is_file() for name in FILES)


def test_unknown_issue_lists_the_known_ones(tmp_path):
    result = run(GOOD, "build", "2024-01-99-nope", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert result.output == (
        "Error: 2024-01-99-nope: no such issue (known issues: 2024-01-10-first, 2024-01-17-arabic)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_build_without_an_issue_is_a_usage_error():
    result = run(GOOD, "build")
    assert result.exit_code == 1  # a usage error is a user error: exit 1
    assert "Error: name an ISSUE (a path or slug), or pass --all" in result.output


def test_check_all_passes_on_the_example():
    result = run(REPO, "check", "--all", "--no-spam-score")
    assert result.exit_code == 0, result.output
    slugs = [line for line in result.output.splitlines() if not line.startswith(" ")]
    assert slugs == ["2026-03-17-multilingual-llms", "2026-03-24-translation-ar", "2026-03-31-evaluation"]
    assert "  ok    all 45 paper titles in the text part" in result.output.splitlines()
    assert "FAIL" not in result.output and "warn" not in result.output


def test_check_fails_with_exit_1_on_a_failing_issue(tmp_path):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    toml = root / "newsletter.toml"
    toml.write_text(toml.read_text().replace("[email]\n", "[email]\nmax_html_kb = 5\n"))
    result = run(root, "check", "2024-01-10-first", "--no-spam-score")
    assert result.exit_code == 1
    fails = [line for line in result.output.splitlines() if line.startswith("  FAIL  ")]
    assert len(fails) == 1 and "over the 5 KB limit" in fails[0]
    assert result.output.endswith("Error: 1 issue(s) failed the checks\n")


def test_issue_new_creates_a_file_that_loads_and_builds(tmp_path, monkeypatch):
    """Regression: `issue new` wrote `preheader: \"\"`, which the reader rejected."""
    root = copy_newsletter(GOOD, tmp_path / "digest")
    (root / "papers" / "new-tokenizer.md").write_text(
        "---\nid: new-tokenizer\ntitle: A New Tokenizer\npublished: 2024-01-20\ntags: [fairness]\n---\n"
        "A tokenizer that is fair to every script.\n"
    )
    result = run(
        root,
        "issue",
        "new",
        "tokenizers",
        "--date",
        "2024-02-01",
        "--tag",
        "fairness",
        "--limit",
        "5",
        monkeypatch=monkeypatch,
    )
    assert result.exit_code == 0, result.output
    assert result.output == "Created issues/2024-02-01-tokenizers.md (issue 3, draft)\n"
    path = root / "issues" / "2024-02-01-tokenizers.md"
    settings = load_settings(root)
    problems: list = []
    issue = read_issue(path, settings, problems)
    assert problems == []
    assert issue is not None
    assert (issue.number, issue.status, issue.title, issue.select.tags, issue.select.limit) == (
        3,
        "draft",
        "Tokenizers",
        ("fairness",),
        5,
    )
    assert issue.subject == "Test Digest #3: Tokenizers"
    assert [i.slug for i in load_library(settings).issues][-1] == "2024-02-01-tokenizers"
    built = run(root, "build", "2024-02-01-tokenizers", "--out", str(tmp_path / "out"))
    assert built.exit_code == 0, built.output
    assert built.output.startswith("2024-02-01-tokenizers: 1 paper,")


def test_issue_new_refuses_to_overwrite(tmp_path, monkeypatch):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    path = root / "issues" / "2024-02-01-again.md"
    path.write_text("---\ntitle: Again\ndate: 2024-02-01\nnumber: 3\ninclude: [cjk-tokenizers]\n---\nHi.\n")
    before = path.read_bytes()
    result = run(root, "issue", "new", "again", "--date", "2024-02-01", monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert result.output == "Error: 2024-02-01-again.md: already exists (choose another slug or date)\n"
    assert path.read_bytes() == before


def test_issue_new_numbers_after_the_highest(tmp_path, monkeypatch):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    result = run(
        root, "issue", "new", "later", "--date", "2024-03-01", "--title", "Später", monkeypatch=monkeypatch
    )
    assert result.exit_code == 0, result.output
    assert result.output == "Created issues/2024-03-01-later.md (issue 3, draft)\n"
    text = (root / "issues" / "2024-03-01-later.md").read_text()
    assert text.startswith(
        "---\ntitle: Später\nsubject: 'Test Digest #3: Später'\ndate: 2024-03-01\nnumber: 3\n"
    )


def test_issue_new_rejects_a_bad_slug(tmp_path):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    result = run(root, "issue", "new", "Bad Slug!", "--date", "2024-02-01")
    assert result.exit_code == 1  # a usage error is a user error: exit 1
    assert "expected lowercase letters, digits and '-', got 'Bad Slug!'" in result.output
    assert sorted(p.name for p in (root / "issues").iterdir()) == [
        "2024-01-10-first.md",
        "2024-01-17-arabic.md",
    ]


# ---------------------------------------------------------------------------
# Help


def _leaves(path: str, command: click.Command) -> list[tuple[str, click.Command]]:
    """Every leaf command under `command` as (path, command)."""
    if isinstance(command, click.Group):
        return [leaf for name, sub in command.commands.items() for leaf in _leaves(f"{path} {name}", sub)]
    return [(path, command)]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_module_imports(name):
    """A command whose module fails to import must fail here, not drop out of the help tests."""
    module, attr = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(f"newsletter.cli.{module}"), attr)
    assert isinstance(command, click.Command), f"newsletter.cli.{module}:{attr} is not a click command"


def test_main_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1]
    for name in COMMANDS:
        assert f"  {name} " in listed or listed.rstrip().endswith(f"  {name}"), name
    assert "newsletter build 2026-03-17-multilingual" in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_ending_with_an_example(name):
    # Imported inside the test, not at collection: an import error fails this command's test.
    module, attr = COMMANDS[name].split(":")
    top = getattr(importlib.import_module(f"newsletter.cli.{module}"), attr)
    for path, command in _leaves(name, top):
        _assert_help_ends_with_an_example(path, command)


def _assert_help_ends_with_an_example(path: str, command: click.Command) -> None:
    result = CliRunner().invoke(main, [*path.split(), "--help"])
    assert result.exit_code == 0, f"{path}: {result.output}"
    assert result.output.startswith("Usage: ") and f" {path} " in result.output.splitlines()[0]
    docstring = [line.strip() for line in (command.help or "").strip().splitlines() if line.strip()]
    assert len(docstring) >= 3, f"{path}: no help"
    heading = max(i for i, line in enumerate(docstring) if line.startswith("Example"))
    examples = docstring[heading + 1 :]
    assert docstring[heading] in ("Example:", "Examples:") and examples, (
        f"{path}: help does not end with an example"
    )
    assert all("newsletter " in line for line in examples), (path, examples)
    assert all(line in result.output for line in examples), path
