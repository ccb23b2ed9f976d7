"""Benchmark: build the 45-paper example issue, stage by stage, and compare with the reference MJML.

Run: .venv/bin/python bench/build.py [--runs 15] [--issue SLUG] [--mjml-js PATH/TO/node_modules/.bin/mjml]

Prints the median time of each stage over the runs (after one warm-up build), the
end-to-end median, and — when the JavaScript `mjml` CLI is available (npm install mjml) —
the time the reference implementation takes to compile the same MJML, for a ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.config import load_settings  # noqa: E402
from newsletter.content.library import load_library  # noqa: E402
from newsletter.content.selection import papers_for  # noqa: E402
from newsletter.mail import markers, render  # noqa: E402
from newsletter.mail.message import MessageTemplate, Recipient  # noqa: E402


def build_once(root: Path, slug: str) -> tuple[dict[str, float], str]:
    times: dict[str, float] = {}

    def stage(name: str, func, *args, **kwargs):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        times[name] = time.perf_counter() - start
        return result

    settings = stage("settings", load_settings, root)
    library = stage("read content", load_library, settings, only=slug)
    issue = library.issue(slug)
    papers = stage("select", papers_for, library, issue)
    env = stage("jinja env", render.jinja_environment, settings.templates_dir)
    context = stage("context", render.issue_context, library, issue, papers)
    bare = stage("jinja bare (for markers)", render.render_template, env, render.EMAIL_TEMPLATE, context)
    bare_text = render.render_template(env, render.TEXT_TEMPLATE, context)
    nonce = stage("choose nonce", markers.choose_nonce, bare, bare_text)
    context = render.issue_context(library, issue, papers, nonce)
    source = stage("jinja -> MJML", render.render_template, env, render.EMAIL_TEMPLATE, context)
    compiled = stage("MJML -> HTML", render.mjml_to_html, source)
    inlined = stage("premailer", render.inline_css, compiled)
    document = stage("finish", render.finish_html, inlined)
    text = stage("text part", render.render_template, env, render.TEXT_TEMPLATE, context)
    counts = {name: source.count(markers.marker(name, nonce)) for name in markers.BODY_MARKERS}
    text_counts = {name: text.count(markers.marker(name, nonce)) for name in markers.BODY_MARKERS}
    rendered = render.Rendered(
        issue,
        tuple(papers),
        issue.subject,
        issue.preheader,
        document,
        text,
        issue.language,
        context["dir"],
        context["strings"],
        markers.Markers(nonce, counts, text_counts),
    )
    template = stage("MIME template", MessageTemplate.build, rendered, settings)
    stage("personalise x1", template.personalise, Recipient("reader@example.org", "Ada", "t" * 40))
    return times, source


JS_LOOP = """
const fs = require("fs"); const mjml2html = require("mjml");
const src = fs.readFileSync(process.argv[1], "utf8");
for (let i = 0; i < 3; i++) mjml2html(src, {validationLevel: "skip"});
const t = [];
for (let i = 0; i < 10; i++) { const s = process.hrtime.bigint(); mjml2html(src, {validationLevel: "skip"});
  t.push(Number(process.hrtime.bigint() - s) / 1e6); }
t.sort((a, b) => a - b); console.log(t[5]);
"""


def _js_in_process(cli: Path, source: Path) -> float | None:
    """Median seconds for the reference mjml to compile `source` inside one warm node process."""
    modules = cli.resolve().parent.parent.parent  # .../node_modules/mjml/bin/mjml -> .../node_modules
    node = shutil.which("node")
    if node is None or not (modules / "mjml").is_dir():
        return None
    result = subprocess.run(
        [node, "-e", JS_LOOP, str(source)],
        capture_output=True,
        text=True,
        env={"NODE_PATH": str(modules), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    try:
        return float(result.stdout.strip()) / 1000
    except ValueError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--issue", default="2026-03-17-multilingual-llms")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--mjml-js", help="path to the mjml CLI (default: `mjml` on PATH or /tmp/mjmljs)")
    args = parser.parse_args()

    start = time.perf_counter()
    _, source = build_once(args.root, args.issue)  # warm-up: imports, template compilation, caches
    print(f"first build (cold, with imports): {(time.perf_counter() - start) * 1000:.0f} ms")

    runs = []
    for _ in range(args.runs):
        start = time.perf_counter()
        times, _ = build_once(args.root, args.issue)
        times["total"] = time.perf_counter() - start
        runs.append(times)
    print(f"\nmedian of {args.runs} warm builds of {args.issue}:")
    for name in runs[0]:
        print(f"  {name:<26} {statistics.median(r[name] for r in runs) * 1000:8.2f} ms")
    total = statistics.median(r["total"] for r in runs)
    python_mjml = statistics.median(r["MJML -> HTML"] for r in runs)

    js = args.mjml_js or shutil.which("mjml") or "/tmp/mjmljs/node_modules/.bin/mjml"
    if Path(js).exists():
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "issue.mjml"
            src.write_text(source, encoding="utf-8")
            samples = []
            for _ in range(5):
                start = time.perf_counter()
                subprocess.run(
                    [js, str(src), "-o", str(Path(tmp) / "out.html")], check=True, capture_output=True
                )
                samples.append(time.perf_counter() - start)
            js_time = statistics.median(samples)
            in_process = _js_in_process(Path(js), src)
        print(f"\nreference mjml, JavaScript CLI per file (with node start-up): {js_time * 1000:.0f} ms")
        if in_process is not None:
            print(f"reference mjml, in one node process (median of 10): {in_process * 1000:.1f} ms")
            print(
                f"mjml-python compile: {python_mjml * 1000:.2f} ms -> {in_process / python_mjml:.0f}x faster "
                "than the reference compiler in-process"
            )
    else:
        print("\n(reference mjml not found: `npm install --prefix /tmp/mjmljs mjml` to compare)")
    goal = 0.3
    print(
        f"\nend to end: {total * 1000:.1f} ms (goal <= {goal * 1000:.0f} ms: {'met' if total <= goal else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
