"""Content: reading papers and issues, and every class of bad input reported exactly.

Each case under tests/fixtures/bad/<case>/ is a small newsletter folder with one kind of
mistake; the CLI must name file, field, what it expected and what it got, report every
problem at once, exit 1 and never show a traceback.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.content.issues import read_issue
from newsletter.content.library import load_library
from newsletter.content.papers import read_paper
from newsletter.errors import Problem, ProblemsError
from tests.support.project import BAD, GOOD, REPO, copy_newsletter, run

# ---------------------------------------------------------------------------
# Helpers


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error: ")]


def build_bad(case: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str):
    result = run(
        BAD / case, "build", *(args or ("--all",)), "--out", str(tmp_path / "out"), monkeypatch=monkeypatch
    )
    assert "Traceback" not in result.output
    return result


# ---------------------------------------------------------------------------
# Every class of bad input, through the CLI


def test_missing_front_matter(monkeypatch, tmp_path):
    result = build_bad("no-front-matter", monkeypatch, tmp_path)
    assert result.exit_code == 1
    assert error_lines(result.output) == [
        "Error: papers/no-front-matter.md: expected front matter between '---' lines at the top, found none"
    ]
    assert result.output.rstrip().endswith("Aborted with 1 error.")
    assert not (tmp_path / "out").exists()


def test_malformed_yaml_is_reported_with_its_reason(monkeypatch, tmp_path):
    result = build_bad("bad-yaml", monkeypatch, tmp_path)
    assert result.exit_code == 1
    [line] = error_lines(result.output)
    assert re.fullmatch(
        r"Error: papers/bad-yaml\.md:\d+: front matter is not valid YAML: mapping values are not allowed here",
        line,
    )
    assert "Aborted with 1 error." in result.output


def test_malformed_yaml_names_the_right_line(monkeypatch, tmp_path):
    """Regression: the YAML line was one too high (the split keeps the newline after '---')."""
    # 'title: Colons: everywhere' is line 3 of the file (line 1 is '---')
    result = build_bad("bad-yaml", monkeypatch, tmp_path)
    assert error_lines(result.output) == [
        "Error: papers/bad-yaml.md:3: front matter is not valid YAML: mapping values are not allowed here"
    ]


def test_bad_date(monkeypatch, tmp_path):
    result = build_bad("bad-date", monkeypatch, tmp_path)
    assert result.exit_code == 1
    assert error_lines(result.output) == [
        "Error: issues/2024-01-10-one.md: date: expected a date YYYY-MM-DD, got '17/3'"
    ]
    assert result.output.rstrip().endswith("Aborted with 1 error.")


def test_impossible_calendar_date_is_a_date_error(monkeypatch, tmp_path):
    """Regression: YAML raised ValueError inside the timestamp, reported as an unclosed front matter."""
    result = build_bad("impossible-date", monkeypatch, tmp_path)
    assert error_lines(result.output) == [
        "Error: issues/2024-01-10-one.md: date: expected a date YYYY-MM-DD, got '2024-01-32'"
    ]


def test_unquoted_arxiv_style_id_keeps_its_digits(monkeypatch, tmp_path):
    """Regression: YAML read 2401.10010 as the float 2401.1001, losing the trailing zero."""
    result = build_bad("float-id", monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    problems: list[Problem] = []
    paper = read_paper(BAD / "float-id" / "papers" / "2401.10010.md", problems)
    assert paper is not None and (paper.id, paper.arxiv) == ("2401.10010", "2401.10010")


def test_yes_and_on_are_words_not_booleans(tmp_path):
    """YAML 1.1 reads unquoted yes/on/no as booleans; a tag `yes` must stay the word."""
    path = tmp_path / "x.md"
    path.write_text("---\nid: x\ntitle: No\ntags: [yes, on, off]\n---\nAn abstract.\n", encoding="utf-8")
    problems: list[Problem] = []
    paper = read_paper(path, problems)
    assert problems == []
    assert paper is not None and (paper.title, paper.tags) == ("No", ("yes", "on", "off"))


def test_missing_required_fields_all_reported(monkeypatch, tmp_path):
    result = build_bad("missing-fields", monkeypatch, tmp_path)
    assert result.exit_code == 1
    assert error_lines(result.output) == [
        "Error: papers/missing.md: id: missing (required)",
        "Error: papers/missing.md: title: missing (required)",
        "Error: issues/2024-01-10-one.md: title: missing (required)",
        "Error: issues/2024-01-10-one.md: date: missing (required)",
        "Error: issues/2024-01-10-one.md: number: missing (required)",
    ]
    assert result.output.rstrip().endswith("Aborted with 5 errors.")


def test_wrong_types(monkeypatch, tmp_path):
    result = build_bad("wrong-types", monkeypatch, tmp_path)
    assert result.exit_code == 1
    lines = error_lines(result.output)
    assert len(lines) == 3
    # "5 (a number)" reads oddly; only the part that names field, expectation and value is pinned
    assert lines[0].startswith("Error: papers/good-paper.md: tags: expected a list of strings, got 5")
    assert lines[1:] == [
        "Error: issues/2024-01-10-one.md: number: expected a whole number >= 1, got 'one'",
        "Error: issues/2024-01-10-one.md: include: expected a list of strings, got a mapping",
    ]
    assert result.output.rstrip().endswith("Aborted with 3 errors.")


def test_unknown_paper_in_include_with_a_hint_when_close(monkeypatch, tmp_path):
    result = build_bad("unknown-include", monkeypatch, tmp_path, "2024-01-10-one")
    assert result.exit_code == 1
    assert error_lines(result.output) == [
        "Error: issues/2024-01-10-one.md: include: unknown paper id 'good-papr' (no papers/good-papr.md)",
        "Error: issues/2024-01-10-one.md: include: unknown paper id 'zzz-nothing-like-it' "
        "(no papers/zzz-nothing-like-it.md)",
    ]
    # one hint, for the close one only, after a blank line
    assert "\n\nDid you mean 'good-paper'?\n\nAborted with 2 errors." in result.output
    assert result.output.count("Did you mean") == 1


def test_two_files_claiming_one_paper_id(monkeypatch, tmp_path):
    result = build_bad("duplicate-ids", monkeypatch, tmp_path)
    assert result.exit_code == 1
    assert error_lines(result.output) == [
        "Error: papers/copy-of-good.md: id: must match the file name: expected 'copy-of-good', got 'good-paper'"
    ]


def test_duplicate_issue_numbers(monkeypatch, tmp_path):
    result = build_bad("duplicate-numbers", monkeypatch, tmp_path)
    assert result.exit_code == 1
    assert error_lines(result.output) == [
        "Error: issues/2024-01-17-two.md: number: duplicate issue number 1 (also in 2024-01-10-one)"
    ]


def test_problems_in_another_issue_do_not_block_building_one(monkeypatch, tmp_path):
    # building the first issue: the second one's duplicate number is only a warning
    result = build_bad("duplicate-numbers", monkeypatch, tmp_path, "2024-01-10-one")
    assert result.exit_code == 0, result.output
    assert (
        "Warning: issues/2024-01-17-two.md: number: duplicate issue number 1 (also in 2024-01-10-one)"
        in result.output
    )
    assert (tmp_path / "out" / "2024-01-10-one" / "email.html").is_file()


def test_unknown_fields_are_warned_by_name_but_not_fatal(monkeypatch, tmp_path):
    result = build_bad("unknown-fields", monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning: ")]
    assert warnings == [
        "Warning: papers/good-paper.md: venue: unknown field (ignored)",
        "Warning: issues/2024-01-10-one.md: colour: unknown field (ignored)",
    ]
    assert "Error" not in result.output
    assert (tmp_path / "out" / "2024-01-10-one" / "preview.eml").is_file()


def test_every_problem_in_a_file_is_reported_at_once(monkeypatch, tmp_path):
    result = build_bad("three-problems", monkeypatch, tmp_path)
    assert result.exit_code == 1
    assert error_lines(result.output) == [
        "Error: issues/2024-01-10-one.md: date: expected a date YYYY-MM-DD, got '17/3'",
        "Error: issues/2024-01-10-one.md: language: expected a language tag like 'en' or 'ar', got 'en gb'",
        "Error: issues/2024-01-10-one.md: status: expected one of draft, published, got 'sent'",
    ]
    assert result.output.rstrip().endswith("Aborted with 3 errors.")


def test_bad_settings_all_reported_and_unknown_keys_warned(monkeypatch, tmp_path):
    result = build_bad("bad-settings", monkeypatch, tmp_path)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Warning: newsletter.toml: newsletter.colour: unknown setting (ignored)",
        "Warning: newsletter.toml: [extras]: unknown section (ignored)",
        "Error: newsletter.toml: newsletter.base_url: expected an absolute http(s) URL, got 'example.org/bad'",
        "Error: newsletter.toml: newsletter.name: missing (required)",
        "",
        "Aborted with 2 errors.",
    ]


def test_invalid_toml(monkeypatch, tmp_path):
    result = build_bad("invalid-toml", monkeypatch, tmp_path)
    assert result.exit_code == 1
    [line] = error_lines(result.output)
    assert line.startswith("Error: newsletter.toml: not valid TOML: ")
    assert "(at line 2, column 19)" in line  # the unclosed string of `name = "Bad Digest`


def test_missing_settings_file_points_to_init(tmp_path, monkeypatch):
    result = run(tmp_path, "build", "--all", monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert result.output.startswith("Error: newsletter.toml: no settings file found\n")
    assert "newsletter init DIR" in result.output


def _broken_templates(tmp_path: Path, name: str, old: str, new: str) -> Path:
    root = copy_newsletter(GOOD, tmp_path / "digest", copy_templates=True)
    template = root / "templates" / name
    text = template.read_text()
    assert old in text
    template.write_text(text.replace(old, new, 1))
    return root


def test_template_syntax_error_names_file_and_line(tmp_path, monkeypatch):
    root = _broken_templates(tmp_path, "email/issue.mjml.j2", "{{ p.title }}", "{{ p.title | }}")
    source = (root / "templates/email/issue.mjml.j2").read_text()
    line = 1 + source[: source.index("{{ p.title | }}")].count("\n")
    result = run(root, "build", "2024-01-10-first", "--out", str(tmp_path / "out"), monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert error_lines(result.output) == [
        f"Error: templates/email/issue.mjml.j2:{line}: template syntax error: expected token 'name', got 'end of print statement'"
    ]
    assert not (tmp_path / "out").exists()


def test_mjml_error_names_the_template(tmp_path, monkeypatch):
    root = _broken_templates(tmp_path, "email/issue.mjml.j2", "</mjml>", "<not-mjml/></mjml>")
    result = run(root, "build", "2024-01-10-first", "--out", str(tmp_path / "out"), monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [error] = error_lines(result.output)
    assert re.fullmatch(
        r"Error: templates/email/issue\.mjml\.j2: MJML error: unexpected element in root template "
        r"at position \d+:\d+ \(line \d+ of the generated MJML\)",
        error,
    ), error


# ---------------------------------------------------------------------------
# Single files read directly


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"---\nid: x\ntitle: \xff\n---\nBody.\n", "x.md: not UTF-8 text (byte 17)"),
        (
            "---\nid: x\ntitle: T\nBody without a closing line.\n",
            "x.md: front matter is not closed by a '---' line",
        ),
        (
            "---\n- a\n- b\n---\nBody.\n",
            "x.md: expected front matter as 'key: value' lines, got a list (['a', 'b'])",
        ),
        (
            "---\nid: X Y\ntitle: T\n---\nBody.\n",
            "x.md: id: expected lowercase letters, digits, '.', '_' or '-', got 'X Y'",
        ),
        (
            "---\nid: x\ntitle: T\nurl: /relative\n---\nBody.\n",
            "x.md: url: expected an absolute http(s) URL, got '/relative'",
        ),
        (
            "---\nid: x\ntitle: T\nupvotes: -3\n---\nBody.\n",
            "x.md: upvotes: expected a whole number >= 0, got -3 (a number)",
        ),
        (
            "---\nid: x\ntitle: T\narxiv: 'abc'\n---\nBody.\n",
            "x.md: arxiv: expected an arXiv id like 2412.04003, got 'abc'",
        ),
    ],
)
def test_read_paper_problems(tmp_path, text, expected):
    problems: list[Problem] = []
    assert read_paper(_write(tmp_path / "x.md", text), problems) is None
    assert [str(p) for p in problems if not p.warning] == [expected]


def test_read_paper_cleans_untrusted_text_and_splits_the_note(tmp_path):
    path = _write(
        tmp_path / "p.md",
        '\ufeff---\nid: p\ntitle: "Bad\\x85 title\\x07 %%GREETING%%"\nauthors: [A]\npublished: 2024-01-02\n'
        "tags: [NLP, nlp, Arabic]\n---\nAbstract %%UNSUBSCRIBE_URL%% here.\n\n## Editor's note\nRead it.\n",
    )
    problems: list[Problem] = []
    paper = read_paper(path, problems)
    assert problems == []
    assert paper is not None
    assert paper.title == "Bad title %%GREETING%%"  # C1/C0 controls gone, marker-like text as written
    assert paper.authors == ("A",)
    assert paper.tags == ("nlp", "arabic")
    assert paper.published == dt.date(2024, 1, 2)
    assert paper.abstract == "Abstract %%UNSUBSCRIBE_URL%% here."
    assert paper.note == "Read it."


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "notes.md",
            "---\ntitle: T\n---\n",
            ["notes.md: expected a file name like issues/2026-03-17-some-slug.md, got 'notes.md'"],
        ),
        (
            "2024-01-10-x.md",
            "---\ntitle: T\ndate: 2024-01-11\nnumber: 1\ninclude: [a]\n---\n",
            ["2024-01-10-x.md: date: must match the file name: expected 2024-01-10, got 2024-01-11"],
        ),
        (
            "2024-01-10-x.md",
            "---\ntitle: T\ndate: 2024-01-10\nnumber: 1\n---\n",
            ["2024-01-10-x.md: include: expected paper ids in 'include' or rules in 'select', found neither"],
        ),
        (
            "2024-01-10-x.md",
            "---\ntitle: T\ndate: 2024-01-10\nnumber: 1\nselect:\n  since: 2024-02-01\n  until: 2024-01-01\n"
            "  sort: random\n  limit: 0\n  has_code: 'yes'\n---\n",
            [
                "2024-01-10-x.md: select.has_code: expected true or false, got 'yes'",
                "2024-01-10-x.md: select.sort: expected one of upvotes, rank, published, title, id, got 'random'",
                "2024-01-10-x.md: select.limit: expected a whole number >= 1, got 0 (a number)",
                "2024-01-10-x.md: select.until: must not be before select.since (2024-02-01)",
            ],
        ),
        (
            "2024-01-10-x.md",
            "---\ntitle: T\ndate: 2024-01-10\nnumber: 1\nselect: [a]\n---\n",
            [
                "2024-01-10-x.md: select: expected a mapping of rules, got a list (['a'])",
                "2024-01-10-x.md: include: expected paper ids in 'include' or rules in 'select', found neither",
            ],
        ),
    ],
)
def test_read_issue_problems(tmp_path, name, text, expected):
    settings = load_settings(GOOD)
    problems: list[Problem] = []
    assert read_issue(_write(tmp_path / name, text), settings, problems) is None
    assert [str(p) for p in problems if not p.warning] == expected


def test_read_issue_defaults(tmp_path):
    settings = load_settings(GOOD)
    path = _write(
        tmp_path / "2024-02-01-x.md",
        "---\ntitle: Only a title\ndate: 2024-02-01\nnumber: 3\ninclude: [a]\n---\nHi.\n",
    )
    problems: list[Problem] = []
    issue = read_issue(path, settings, problems)
    assert problems == []
    assert issue is not None
    assert (issue.slug, issue.subject, issue.language, issue.status, issue.preheader) == (
        "2024-02-01-x",
        "Only a title",
        "en",
        "draft",
        "",
    )
    assert issue.web_url(settings) == "https://example.org/digest/issues/2024-02-01-x/"


def test_the_good_fixture_and_the_example_load_cleanly():
    library = load_library(load_settings(GOOD))
    assert sorted(library.papers) == ["2401.00001", "arabic-dialects", "cjk-tokenizers"]
    assert [i.slug for i in library.issues] == ["2024-01-10-first", "2024-01-17-arabic"]
    assert library.issue("issues/2024-01-17-arabic.md").language == "ar"
    example = load_library(load_settings(REPO))
    assert len(example.papers) == 45
    assert [i.number for i in example.issues] == [1, 2, 3]


def test_problems_error_formats_hints_once():
    error = ProblemsError(
        [
            Problem("a.md", "x", "bad", hint="Fix it."),
            Problem("b.md", None, "worse", hint="Fix it."),
            Problem("c.md", "y", "just a warning", warning=True),
        ]
    )
    assert (
        error.format_message()
        == "Error: a.md: x: bad\nError: b.md: worse\n\nFix it.\n\nAborted with 2 errors."
    )


def test_the_paper_schema_is_the_paper_class_and_the_written_key_order() -> None:
    """One table: every field it reads is a Paper attribute, and every Paper attribute but the body is a field."""
    import dataclasses

    from newsletter.content.papers import Paper
    from newsletter.content.schema import KEY_ORDER, PAPER_SCHEMA
    from newsletter.ingest.paper_files import render_paper

    read = {f.name for f in PAPER_SCHEMA if f.convert is not None}
    assert read == {f.name for f in dataclasses.fields(Paper)} - {"abstract", "note", "path"}
    shuffled = {k: "x" for k in reversed(KEY_ORDER)} | {"editor_key": "y"}
    text = render_paper(shuffled, "Abstract.")
    assert [line.split(":")[0] for line in text.splitlines()[1:-3]] == [*KEY_ORDER, "editor_key"]


def test_a_paper_field_reports_what_it_expected(tmp_path) -> None:
    path = tmp_path / "a-paper.md"
    path.write_text(
        "---\nid: a-paper\ntitle: T\narxiv: '12.3'\nupvotes: -1\ncode: not a url\n---\n\nAbstract.\n"
    )
    problems: list[Problem] = []
    assert read_paper(path, problems) is None
    assert [str(p) for p in problems] == [
        "a-paper.md: arxiv: expected an arXiv id like 2412.04003, got '12.3'",
        "a-paper.md: code: expected an absolute http(s) URL, got 'not a url'",
        "a-paper.md: upvotes: expected a whole number >= 0, got -1 (a number)",
    ]


# ---------------------------------------------------------------------------
# Strict front matter where a typo changes what readers get


def _issue_problems(tmp_path: Path, front: str) -> list[str]:
    problems: list[Problem] = []
    text = f"---\ntitle: T\ndate: 2024-01-10\nnumber: 1\n{front}---\nIntro.\n"
    read_issue(_write(tmp_path / "2024-01-10-x.md", text), load_settings(GOOD), problems)
    return [("warn " if p.warning else "") + str(p) for p in problems]


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        (
            "select:\n  tag: [nlp]\n",
            "2024-01-10-x.md: select.tag: unknown field; did you mean 'select.tags'?",
        ),
        ("select:\n  limt: 3\n", "2024-01-10-x.md: select.limt: unknown field; did you mean 'select.limit'?"),
        (
            "include: [a]\nstauts: published\n",
            "2024-01-10-x.md: stauts: unknown field; did you mean 'status'?",
        ),
        ("include: [a]\nsubjet: S\n", "2024-01-10-x.md: subjet: unknown field; did you mean 'subject'?"),
        ("includ: [a]\n", "2024-01-10-x.md: includ: unknown field; did you mean 'include'?"),
    ],
)
def test_typos_in_select_and_close_to_a_field_are_errors_with_did_you_mean(tmp_path, front, expected):
    assert expected in _issue_problems(tmp_path, front)


def test_an_unknown_select_key_far_from_any_is_still_an_error(tmp_path):
    (problem,) = [p for p in _issue_problems(tmp_path, "select:\n  order: desc\n") if "order" in p]
    assert problem.startswith("2024-01-10-x.md: select.order: unknown field (expected one of select.tags,")


def test_an_unknown_field_far_from_any_stays_a_warning(tmp_path):
    assert _issue_problems(tmp_path, "include: [a]\ncolour: blue\n") == [
        "warn 2024-01-10-x.md: colour: unknown field (ignored)"
    ]


def test_a_paper_field_typo_is_an_error_too(tmp_path):
    problems: list[Problem] = []
    path = _write(tmp_path / "p.md", "---\nid: p\ntitle: T\ntag: [nlp]\n---\nAbstract.\n")
    assert read_paper(path, problems) is None
    assert [str(p) for p in problems] == ["p.md: tag: unknown field; did you mean 'tags'?"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('authors: "Alice, Bob"', 'p.md: authors: expected a list like ["Alice", "Bob"], got \'Alice, Bob\''),
        ('tags: "a, b"', 'p.md: tags: expected a list like ["a", "b"], got \'a, b\''),
        ("tags: nlp", "p.md: tags: expected a list like [\"nlp\"], got 'nlp'"),
    ],
)
def test_a_string_where_a_list_is_expected_shows_the_list_form(tmp_path, line, expected):
    problems: list[Problem] = []
    path = _write(tmp_path / "p.md", f"---\nid: p\ntitle: T\n{line}\n---\nAbstract.\n")
    assert read_paper(path, problems) is None
    assert [str(p) for p in problems] == [expected]


def test_a_paper_with_an_empty_abstract_is_accepted_with_a_warning(monkeypatch, tmp_path):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    _write(
        root / "papers" / "cjk-tokenizers.md",
        "---\nid: cjk-tokenizers\ntitle: Only A Title\ntags: [tokenization]\npublished: 2024-01-07\n---\n",
    )
    result = run(root, "build", "2024-01-10-first", "--out", str(tmp_path / "out"), monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert (
        "Warning: papers/cjk-tokenizers.md: no abstract (the body after the front matter is empty)"
        in result.output
    )
    text = (tmp_path / "out" / "2024-01-10-first" / "email.txt").read_text(encoding="utf-8")
    assert "Only A Title" in text
    html = (tmp_path / "out" / "2024-01-10-first" / "email.html").read_text(encoding="utf-8")
    assert "Only A Title" in html


def test_an_issue_naming_a_broken_paper_says_so(monkeypatch, tmp_path):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    _write(
        root / "papers" / "2401.00001.md", "---\nid: 2401.00001\ntitle: T\npublished: not-a-date\n---\nA.\n"
    )
    result = run(root, "build", "--all", "--out", str(tmp_path / "out"), monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert error_lines(result.output) == [
        "Error: papers/2401.00001.md: published: expected a date YYYY-MM-DD, got 'not-a-date'",
        "Error: issues/2024-01-10-first.md: include: paper '2401.00001' has errors, see above",
    ]
    assert "unknown paper id" not in result.output


def test_a_mistyped_issue_slug_gets_a_did_you_mean(monkeypatch, tmp_path):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    result = run(root, "build", "2024-01-10-frist", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "no such issue; did you mean '2024-01-10-first'?" in result.output


@pytest.mark.parametrize("field", ["subject", "title", "preheader"])
@pytest.mark.parametrize(
    ("value", "shown"),
    [("Two\\r\\nBcc: x@evil.example", "'Two\\r\\nBcc: x@evil.example'"), ("Bell\\x07", "'Bell\\x07'")],
)
def test_line_breaks_and_controls_in_a_header_field_are_clear_errors(
    monkeypatch, tmp_path, field, value, shown
):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    issue = root / "issues" / "2024-01-10-first.md"
    line = f'{field}: "{value}"'  # YAML double quotes: the escapes become real CR, LF, BEL
    text = re.sub(rf"(?m)^{field}: .*$", lambda _: line, issue.read_text(encoding="utf-8"))
    issue.write_text(text, encoding="utf-8")
    expected = (
        f"Error: issues/2024-01-10-first.md: {field}: expected one line of text "
        f"(no line breaks, tabs or other control characters), got {shown}"
    )
    for command in (
        ["check", "2024-01-10-first", "--no-spam-score"],
        ["build", "2024-01-10-first", "--out", str(tmp_path / "out")],
        ["send", "2024-01-10-first", "--transport", "file", "--outbox", str(tmp_path / "outbox"), "--yes"],
    ):
        result = run(root, *command, monkeypatch=monkeypatch)
        assert result.exit_code == 1, (command, result.output)
        assert expected in error_lines(result.output), (command, result.output)
        assert "Traceback" not in result.output and "ValueError" not in result.output
    assert not (tmp_path / "outbox").exists() or not any((tmp_path / "outbox").iterdir())
