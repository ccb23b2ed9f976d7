"""Benchmark: build the archive site for 500 issues x ~10 papers; then rebuild after one issue changes.

    .venv/bin/python bench/archive.py [--issues 500] [--papers 10] [--runs 3]

Goals on a 2-core machine: full build <= 10 s, one-issue rebuild <= 1 s (medians).
Reading the content (YAML front matter of ~5,500 files) is timed separately: it is the
same for every command, not part of the site build.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.archive.site import build_site  # noqa: E402
from newsletter.config import load_settings  # noqa: E402
from newsletter.content.library import load_library  # noqa: E402

TAGS = [
    "transfer", "evaluation", "tokenization", "arabic", "low-resource", "speech", "translation",
    "benchmark", "alignment", "multimodal", "code", "reasoning", "retrieval", "safety", "data",
]  # fmt: skip
PROSE = (
    "we study cross-lingual transfer in large language models across many languages and show "
    "consistent gains on low-resource benchmarks with a simple recipe that scales to new scripts "
    "while keeping english performance intact and reducing the cost of training and inference"
)
WORDS = PROSE.split(" ")


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def generate(root: Path, issues: int, per_issue: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    (root / "papers").mkdir(parents=True)
    (root / "issues").mkdir()
    (root / "newsletter.toml").write_text(
        f"""[newsletter]
name = "Bench Digest"
base_url = "https://example.org/digest/"
description = "A synthetic digest for benchmarks."
postal_address = "1 Example Road"

[email]
from = "Bench <bench@example.org>"
list_id = "bench.example.org"

[web]
url = "https://example.org/api/"

[paths]
templates = "{(REPO / "templates").as_posix()}"
""",
        encoding="utf-8",
    )
    start = dt.date(2016, 1, 4)
    for n in range(issues):
        date = start + dt.timedelta(days=7 * n)
        ids = []
        for k in range(per_issue):
            pid = f"p{n:04d}-{k:02d}"
            ids.append(pid)
            abstract = " ".join(sentence(rng, rng.randint(12, 25)) for _ in range(rng.randint(4, 8)))
            abstract = abstract.replace("languages", "**languages**", 1).replace(
                "benchmarks", "[benchmarks](https://example.com/b)", 1
            )
            note = f"\n\n## Editor's note\n{sentence(rng, 15)}\n" if k % 3 == 0 else "\n"
            authors = ", ".join(f"Author {rng.randint(1, 999)}" for _ in range(rng.randint(1, 8)))
            tags = ", ".join(rng.sample(TAGS, 2))
            (root / "papers" / f"{pid}.md").write_text(
                f'---\nid: {pid}\ntitle: "{sentence(rng, 8)[:-1]}"\nauthors: [{authors}]\n'
                f'published: {date - dt.timedelta(days=3)}\narxiv: "{2000 + n % 99:04d}.{n * 10 + k:05d}"\n'
                f"upvotes: {rng.randint(0, 300)}\ntags: [{tags}]\n---\n{abstract}{note}",
                encoding="utf-8",
            )
        (root / "issues" / f"{date}-issue-{n + 1}.md").write_text(
            f'---\ntitle: "Issue {n + 1}"\nsubject: "Bench Digest #{n + 1}"\ndate: {date}\n'
            f"number: {n + 1}\nstatus: published\ninclude: [{', '.join(ids)}]\n---\n"
            f"{sentence(rng, 30)} {sentence(rng, 20)}\n",
            encoding="utf-8",
        )


def target_page(issue_file: Path) -> str:
    return f"issues/{issue_file.stem}/index.html"


def timed(action) -> tuple[float, object]:
    begin = time.perf_counter()
    result = action()
    return time.perf_counter() - begin, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=500)
    parser.add_argument("--papers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="newsletter-bench-") as tmp:
        root = Path(tmp) / "digest"
        seconds, _ = timed(lambda: generate(root, args.issues, args.papers))
        print(f"generated {args.issues} issues x {args.papers} papers in {seconds:.1f} s")
        settings = load_settings(root)
        seconds, library = timed(lambda: load_library(settings))
        print(f"load_library (not part of the build): {seconds:.2f} s")

        full = []
        for run in range(args.runs):
            out = Path(tmp) / f"site-{run}"
            seconds, report = timed(lambda out=out: build_site(library, out))
            full.append(seconds)
        print(f"full build: median {statistics.median(full):.2f} s over {args.runs} runs "
              f"({report.total} files; runs: {', '.join(f'{s:.2f}' for s in full)})")  # fmt: skip

        out = Path(tmp) / "site-0"
        seconds, report = timed(lambda: build_site(library, out))
        print(
            f"no-change rebuild: {seconds:.2f} s ({len(report.written)} written, {report.unchanged} unchanged)"
        )

        one = []
        issue_files = sorted((root / "issues").glob("*.md"))
        for run in range(args.runs):
            target = issue_files[len(issue_files) // 2 + run]
            target.write_text(
                target.read_text(encoding="utf-8") + f"\nEdited in run {run}.\n", encoding="utf-8"
            )
            library = load_library(settings)
            seconds, report = timed(lambda library=library: build_site(library, out))
            one.append(seconds)
            # its page and the feeds; the index too when the intro's excerpt changed
            assert set(report.written) <= {"index.html", "feed.xml", "feed.json", target_page(target)}
            assert target_page(target) in report.written
        print(f"one-issue rebuild: median {statistics.median(one):.2f} s over {args.runs} runs "
              f"({len(report.written)} written: {', '.join(report.written)})")  # fmt: skip
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"site size: {size / 1e6:.1f} MB; feed.xml {(out / 'feed.xml').stat().st_size / 1e6:.1f} MB")
        shutil.rmtree(out)
        ok = statistics.median(full) <= 10 and statistics.median(one) <= 1
        print("goals (full <= 10 s, one issue <= 1 s):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
