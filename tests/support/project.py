"""The repository's fixture newsletter, and how tests copy it and run the CLI on it.

Every copy goes through `copy_newsletter`, so the rewrite of `[paths] templates` (the
fixture points at the repository's templates by a relative path that a copy breaks)
is written once.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
GOOD = FIXTURES / "good" / "digest"
BAD = FIXTURES / "bad"
TEMPLATES = REPO / "templates"
# The least a newsletter.toml holds: for tests that make a newsletter folder by hand.
MINIMAL_SETTINGS = """\
[newsletter]
name = "Test Digest"
base_url = "https://digest.example.org/"
postal_address = "1 Example Street, Berlin"

[email]
from = "Test Digest <digest@example.org>"
list_id = "test.digest.example.org"
reply_to = "editor@example.org"
"""


def copy_newsletter(source: Path, dest: Path, *, copy_templates: bool = False, extra_toml: str = "") -> Path:
    """Copy a fixture newsletter to `dest`, pointing [paths] templates at a real templates folder.

    With `copy_templates`, the templates are copied too (for tests that edit them);
    `extra_toml` is appended to newsletter.toml.
    """
    shutil.copytree(source, dest)
    templates = TEMPLATES
    if copy_templates:
        templates = dest / "templates"
        shutil.copytree(TEMPLATES, templates)
    toml = dest / "newsletter.toml"
    text = re.sub(
        r'(?m)^templates = ".*"$', f'templates = "{templates.as_posix()}"', toml.read_text(encoding="utf-8")
    )
    toml.write_text(text + extra_toml, encoding="utf-8")
    return dest


def translate(root: Path, slug: str, language: str, fields: str, body: str) -> Path:
    """Write issue `slug`'s translation into `language`, made from its original as it is now.

    `fields` is the translation's own front matter (YAML lines); `translated_from` is added.
    """
    from newsletter.content.translations import original_hash

    issues = root / "issues"
    path = issues / f"{slug}.{language}.md"
    translated_from = original_hash(issues / f"{slug}.md")
    path.write_text(f"---\n{fields}translated_from: {translated_from}\n---\n{body}", encoding="utf-8")
    return path


def make_newsletter(root: Path, *, extra_toml: str = "") -> Path:
    """A copy of the good fixture newsletter at `root`/digest whose templates path still resolves."""
    return copy_newsletter(GOOD, root / "digest", extra_toml=extra_toml)


def run(root: Path, *args: str, monkeypatch: pytest.MonkeyPatch | None = None) -> Result:
    """Invoke the real CLI on `root`; with monkeypatch, from inside it (so paths print relative)."""
    if monkeypatch is not None:
        monkeypatch.chdir(root)
    return CliRunner().invoke(main, ["--root", str(root), *args], catch_exceptions=False)


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` by `new` in a newsletter file; `old` must be there (a test edits what it means to)."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")
