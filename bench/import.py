"""Benchmark: import a generated 100k-row subscriber CSV into a fresh SQLite store.

Run from the repository root:  .venv/bin/python bench/import.py [ROWS]

Reports rows/s for a first import (all added) and a re-import (all unchanged), and
the process's peak RSS, which must stay flat as ROWS grows (the import streams).
Goal: >= 10,000 rows/s.
"""

from __future__ import annotations

import csv
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.audience.imports import import_csv
from newsletter.store import Store

NAMES = ["Ana Silva", "عمر حداد", "李伟", "प्रिया शर्मा", "Jürgen Müller", "Sofía García", "田中 由紀"]
LANGUAGES = ["en", "ar", "zh", "hi", "de", "es", "ja", "pt-BR"]
STATUSES = ["", "", "", "", "active", "pending", "unsubscribed"]


def generate(path: Path, rows: int) -> None:
    rng = random.Random(42)  # same file every run
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name", "language", "status", "tags"])
        for i in range(rows):
            domain = "example.org" if i % 3 else "example.com"
            writer.writerow(
                [f"Reader.{i}@{domain}", rng.choice(NAMES), rng.choice(LANGUAGES), rng.choice(STATUSES), "ml"]
            )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "subscribers.csv"
        generate(path, rows)
        size_mb = path.stat().st_size / 1e6
        print(f"{rows} rows, {size_mb:.1f} MB CSV; RSS before import {peak_rss_mb():.0f} MB")
        with Store.open(f"sqlite:///{tmp}/bench.db") as store:
            for label in ("first import", "re-import"):
                start = time.perf_counter()
                report = import_csv(store, path)
                elapsed = time.perf_counter() - start
                print(
                    f"{label:>13}: {elapsed:6.2f} s  {rows / elapsed:9,.0f} rows/s  "
                    f"peak RSS {peak_rss_mb():.0f} MB  ({report.summary()})"
                )
            print(f"database: {sum(store.count_by_status().values())} subscribers, {store.count_by_status()}")


if __name__ == "__main__":
    main()
