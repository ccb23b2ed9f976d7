"""Benchmark: import 1,000 Hugging Face daily-papers items, then re-import them.

Run: .venv/bin/python bench/papers_import.py [--items 1000]

Prints the time of a first import (creates every file), a re-import with nothing
changed, and a re-import in which every paper's upvotes changed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.ingest.plan import import_papers  # noqa: E402


def items(n: int, upvote_bump: int = 0) -> list[dict]:
    return [
        {
            "paper": {
                "id": f"2501.{10000 + i}",
                "title": f"Paper {i}: cross-lingual transfer for language number {i}",
                "summary": "We study multilingual models. " * 30,
                "upvotes": i % 97 + upvote_bump,
                "authors": [{"name": f"Author {i}-{k}"} for k in range(6)],
                "publishedAt": "2025-01-15T00:00:00.000Z",
                "githubRepo": f"https://github.com/example/repo{i}" if i % 3 == 0 else None,
                "ai_keywords": ["multilingual", "transfer", f"topic-{i % 20}"],
            },
            "thumbnail": f"https://example.org/thumbs/{i}.png",
            "numComments": i % 7,
        }
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "papers"
        folder.mkdir()
        source = Path(tmp) / "daily.json"
        for label, bump in (
            ("first import", 0),
            ("re-import, nothing changed", 0),
            ("re-import, every upvote changed", 1),
        ):
            source.write_text(json.dumps(items(args.items, bump)), encoding="utf-8")
            start = time.perf_counter()
            report = import_papers([str(source)], folder, fmt="hf")
            elapsed = time.perf_counter() - start
            print(f"{label:<34} {elapsed:6.2f} s  ({report.summary()})")


if __name__ == "__main__":
    main()
