"""The one comparison with a golden file under tests/golden/.

Run the suite with NEWSLETTER_UPDATE_GOLDEN=1 to rewrite the golden files from what the
code produces now, then review the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = "NEWSLETTER_UPDATE_GOLDEN"


def assert_golden(name: str, actual: str) -> None:
    """Assert that `actual` equals tests/golden/`name` (a relative path), byte for byte."""
    path = GOLDEN / name
    if os.environ.get(UPDATE) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with {UPDATE}=1 and review it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from tests/golden/{name} ({UPDATE}=1 regenerates it)"
