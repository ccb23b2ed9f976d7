"""Benchmark: the archive site of 2,000 issues x 10 papers: full build, one-issue rebuild through the CLI, feed size.

    .venv/bin/python bench/archive.py [--issues 2000] [--papers 10] [--runs 3] [--translations 2]

Goals at 2,000 issues x 10 papers on a 2-core machine: full build <= 20 s (shown with the
fragment cache cold, as for a first build ever, and warm, as for any later one), one-issue
rebuild through the CLI (`newsletter archive build`, reading the content included,
Python start-up included) <= 1 s, feed.xml <= 1 MB. Each figure is printed next to its
goal with the load average. The one-issue rebuild's verdict is on CPU seconds, since on a
shared machine the wall time says more about the others than about this code. A full
build renders its pages in one worker process per core (`newsletter.archive.workers`):
its verdict is on wall seconds, printed beside the CPU seconds of the build and its
workers together (os.times), which the workers cannot lower. With `--translations N`,
each issue has N translations (`<slug>.<lang>.md`) and the one-issue rebuild edits the
introduction of the last language's translation (the same goal).
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import hashlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.archive.site import build_site  # noqa: E402
from newsletter.archive.workers import workers  # noqa: E402
from newsletter.config import load_settings  # noqa: E402
from newsletter.content.cache import ContentCache  # noqa: E402
from newsletter.content.fragments import FRAGMENTS_DIR  # noqa: E402
from newsletter.content.library import load_library  # noqa: E402

GOAL_FULL_S = 20.0
GOAL_ONE_S = 1.0
GOAL_FEED_MB = 1.0

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


LANGUAGES = ["de", "ar", "fr", "es", "ja", "zh"]  # of the translations, in this order


def generate(root: Path, issues: int, per_issue: int, seed: int = 0, translations: int = 0) -> None:
    """A newsletter of `issues` issues of `per_issue` papers each, each issue in `translations` more languages."""
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
        original = (
            f'---\ntitle: "Issue {n + 1}"\nsubject: "Bench Digest #{n + 1}"\ndate: {date}\n'
            f"number: {n + 1}\nstatus: published\ninclude: [{', '.join(ids)}]\n---\n"
            f"{sentence(rng, 30)} {sentence(rng, 20)}\n"
        )
        (root / "issues" / f"{date}-issue-{n + 1}.md").write_text(original, encoding="utf-8")
        made_from = hashlib.sha256(original.encode()).hexdigest()[:12]  # translations.original_hash
        for language in LANGUAGES[:translations]:
            (root / "issues" / f"{date}-issue-{n + 1}.{language}.md").write_text(
                f'---\nsubject: "Bench Digest ({language}) #{n + 1}"\ntranslated_from: {made_from}\n---\n'
                f"{sentence(rng, 30)} {sentence(rng, 20)}\n",
                encoding="utf-8",
            )


def target_page(issue_file: Path) -> str:
    return f"issues/{issue_file.stem}/index.html"


def timed(action) -> tuple[float, object]:
    begin = time.perf_counter()
    result = action()
    return time.perf_counter() - begin, result


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the build's worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def system_seconds() -> float:
    """The kernel's CPU seconds for this process and its finished children."""
    t = os.times()
    return t.system + t.children_system


def cpu_timed(action) -> tuple[float, float, object]:
    """Wall and CPU seconds (workers included): on a shared machine the CPU time says what the code costs."""
    cpu = cpu_seconds()
    seconds, result = timed(action)
    return seconds, cpu_seconds() - cpu, result


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "NOT met"


def cli_build(root: Path, out: Path) -> tuple[float, float, list[str]]:
    """`newsletter archive build -v` in a new process: what an editor waits for (wall, CPU, written)."""
    command = [sys.executable, "-c", "from newsletter.cli import main; main()"]
    command += ["--root", str(root), "archive", "build", "--out", str(out), "-v"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    begin = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - begin
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode:
        sys.exit(f"newsletter archive build failed:\n{done.stdout}{done.stderr}")
    written = [line.split(None, 1)[1] for line in done.stdout.splitlines() if line.startswith("wrote")]
    return seconds, cpu, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=2000)
    parser.add_argument("--papers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--translations", type=int, default=0, help="each issue in this many more languages (at most 6)"
    )
    args = parser.parse_args()
    # The CLI runs are timed as an installed tool runs: `pip install` compiles the package's
    # bytecode. Without it (an editable install where PYTHONDONTWRITEBYTECODE is set), each
    # run would compile the modules it imports first, about 0.1 s of CPU that no user pays.
    compileall.compile_dir(REPO / "newsletter", quiet=1)

    with tempfile.TemporaryDirectory(prefix="newsletter-bench-") as tmp:
        root = Path(tmp) / "digest"
        seconds, _ = timed(lambda: generate(root, args.issues, args.papers, translations=args.translations))
        print(f"generated {args.issues} issues x {args.papers} papers, {args.translations} translation(s) "
              f"each, in {seconds:.1f} s")  # fmt: skip
        settings = load_settings(root)
        cache = ContentCache.for_settings(settings)
        seconds, library = timed(lambda: load_library(settings, cache=cache))
        print(f"reading the content, cache empty: {seconds:.2f} s, {cache.reads} files parsed ({load()})")
        cache = ContentCache.for_settings(settings)
        seconds, cpu, _ = cpu_timed(lambda: load_library(settings, cache=cache))
        print(f"reading the content through the cache: {seconds:.2f} s (CPU {cpu:.2f} s), "
              f"{cache.reads} files parsed ({load()})")  # fmt: skip

        # A first build ever finds no fragment cache (cold: every markdown text parsed); any
        # later build into a new folder finds it (warm). Each run builds both ways, alternating.
        full: dict[str, list[float]] = {"cold": [], "warm": []}
        full_cpu: dict[str, list[float]] = {"cold": [], "warm": []}
        # the kernel's share (mostly making 22,000 folders and files) apart: on a shared disk it
        # varies several-fold from run to run while the code's own (user) share does not
        system: dict[str, list[float]] = {"cold": [], "warm": []}
        for run in range(args.runs):
            for cache in ("cold", "warm"):
                if cache == "cold":
                    shutil.rmtree(settings.build_dir / FRAGMENTS_DIR, ignore_errors=True)
                out = Path(tmp) / f"site-{run}-{cache}"
                # The last build's 200 MB and the removal of the one before are still being
                # written out: without this, the kernel charged that work to the next build
                # (12–30 s of system time against 4–5 s after a sync). A first build ever
                # starts on a quiet disk, and so does each of these.
                os.sync()
                kernel = system_seconds()
                seconds, cpu, report = cpu_timed(lambda out=out: build_site(library, out))
                system[cache].append(system_seconds() - kernel)
                full[cache].append(seconds)
                full_cpu[cache].append(cpu)
                if run or cache == "cold":
                    shutil.rmtree(out)
        processes = workers(report.total)
        for cache in ("cold", "warm"):
            median = statistics.median(full_cpu[cache])
            wall = statistics.median(full[cache])
            judged = wall if processes > 1 else median
            print(f"full build, fragment cache {cache}: median wall {wall:.2f} s, CPU {median:.2f} s "
                  f"(build and {processes} worker process(es)) over {args.runs} runs, "
                  f"goal <= {GOAL_FULL_S:.0f} s on the {'wall' if processes > 1 else 'CPU'} time: "
                  f"{verdict(judged, GOAL_FULL_S)} ({report.total} files; "
                  f"CPU per run: {', '.join(f'{s:.2f}' for s in full_cpu[cache])}, of which system "
                  f"{', '.join(f'{s:.2f}' for s in system[cache])}; {load()})")  # fmt: skip

        out = Path(tmp) / "site-0-warm"
        # the first build through the CLI keys every page (the library built this site, not
        # the CLI: there is no index of it yet) and writes the index the next ones use
        for what in ("no-change rebuild through the CLI, keyed in full", "no-change rebuild through the CLI"):
            seconds, cpu, written = cli_build(root, out)
            print(f"{what}: {seconds:.2f} s (CPU {cpu:.2f} s; {len(written)} written; {load()})")

        one, one_cpu = [], []
        # with translations, the last language's translation of an issue is edited (an edit to
        # the original would make its translations stale: the full build warns of them)
        language = LANGUAGES[args.translations - 1] if args.translations else None
        prefix = f"{language}/" if language else ""
        issue_files = sorted(p for p in (root / "issues").glob("*.md") if p.name.count(".") == 1)
        for run in range(args.runs):
            target = issue_files[len(issue_files) // 2 + run]
            edited = target.with_suffix(f".{language}.md") if language else target
            edited.write_text(
                edited.read_text(encoding="utf-8") + f"\nEdited in run {run}.\n", encoding="utf-8"
            )
            seconds, cpu, written = cli_build(root, out)
            one.append(seconds)
            one_cpu.append(cpu)
            # its page, the index when the intro's excerpt changed, and the one feed page carrying it
            assert prefix + target_page(target) in written, written
            feeds = {
                w
                for w in written
                if w.startswith(prefix + "feeds/archive/") or w in (prefix + "feed.xml", prefix + "feed.json")
            }
            expected = {prefix + "index.html", prefix + target_page(target)} | feeds
            assert set(written) <= expected and len(feeds) <= 2, written
        median = statistics.median(one_cpu)
        edit = f"one {language} translation" if language else "one-issue"
        print(f"{edit} rebuild through the CLI: median CPU {median:.2f} s (wall {statistics.median(one):.2f} s) "
              f"over {args.runs} runs, "
              f"goal <= {GOAL_ONE_S:.0f} s: {verdict(median, GOAL_ONE_S)} "
              f"({len(written)} written: {', '.join(written)}; {load()})")  # fmt: skip
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        feed_mb = (out / "feed.xml").stat().st_size / 1e6
        pages = len(list((out / "feeds" / "archive").glob("*.xml")))
        print(f"feed.xml: {feed_mb:.2f} MB, goal <= {GOAL_FEED_MB:.0f} MB: {verdict(feed_mb, GOAL_FEED_MB)} "
              f"({settings.feed_size} issues; {pages} archived pages; site {size / 1e6:.0f} MB)")  # fmt: skip
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
