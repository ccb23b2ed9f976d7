"""The email's responsive layout, judged in a real browser (Debian's chromium, headless).

Chromium is not Gmail or Outlook, but it runs the same @media rules Apple Mail and the
Gmail apps honour: if the phone layout is wrong here, it is wrong there too.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.content.library import load_library
from newsletter.mail.build import build_message
from tests.support.project import REPO

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")

# The email goes into an iframe of the reader's width (headless chromium will not make a
# window narrower than 500 px); the parent measures what the reader sees once it has loaded.
PAGE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="mail" width="{width}" height="900" style="border:0" srcdoc="{srcdoc}"></iframe>
<script>
window.addEventListener('load', () => {{
  const doc = document.getElementById('mail').contentDocument;
  const win = doc.defaultView;
  const cell = doc.querySelector('.card > table > tbody > tr > td');
  const title = doc.querySelector('.paper-title');
  document.body.setAttribute('data-probe', JSON.stringify({{
    width: win.innerWidth,
    padding: win.getComputedStyle(cell).paddingLeft,
    titleSize: win.getComputedStyle(title).fontSize,
    scrollWidth: doc.documentElement.scrollWidth,
    dir: doc.documentElement.dir,
  }}));
}});
</script></body></html>"""


def measure(email_html: str, width: int, tmp_path: Path) -> dict:
    page = tmp_path / f"frame-{width}.html"
    page.write_text(PAGE.format(width=width, srcdoc=html.escape(email_html, quote=True)), encoding="utf-8")
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / f'profile-{width}'}", "--window-size=1000,1000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    match = re.search(r"data-probe=\"([^\"]*)\"", result.stdout)
    assert match, result.stderr[-2000:]
    probe = json.loads(html.unescape(match.group(1)))
    assert probe["width"] == width
    return probe


@pytest.fixture(scope="module")
def issue_html() -> dict[str, str]:
    library = load_library(load_settings(REPO))
    return {
        slug: build_message(library, library.issue(slug)).rendered.html
        for slug in ("2026-03-17-multilingual-llms", "2026-03-24-translation-ar")
    }


def test_phone_layout_narrows_the_margins_and_never_scrolls_sideways(issue_html, tmp_path: Path) -> None:
    phone = measure(issue_html["2026-03-17-multilingual-llms"], 375, tmp_path)
    desktop = measure(issue_html["2026-03-17-multilingual-llms"], 800, tmp_path)
    assert (desktop["padding"], phone["padding"]) == ("32px", "16px")
    assert (desktop["titleSize"], phone["titleSize"]) == ("17px", "16px")
    assert phone["scrollWidth"] <= 375  # nothing wider than the phone's screen


def test_arabic_issue_is_right_to_left_on_a_phone(issue_html, tmp_path: Path) -> None:
    phone = measure(issue_html["2026-03-24-translation-ar"], 375, tmp_path)
    assert phone["dir"] == "rtl"
    assert phone["padding"] == "16px" and phone["scrollWidth"] <= 375
