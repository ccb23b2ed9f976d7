"""A report's charts as inline SVG, drawn with matplotlib's SVG backend.

matplotlib is maintained, needs no display and no network, and its SVG backend writes
text as <text> elements (``svg.fonttype = "none"``): titles in any script are drawn by
the browser's own fonts, nothing is embedded or fetched. The output is made stable (a
fixed hash salt, no date) so a report of the same ledger is the same page. Every label
is passed as plain text (matplotlib escapes it for XML; mathtext is turned off).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from newsletter.reports.figures import BOUNCE_REVIEW, COMPLAINT_REVIEW, IssueFigures, IssueLine

INK = "#1f2937"
ACCENT = "#2563eb"
MACHINE = "#9ca3af"
WARN = "#dc2626"
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_TITLE_CHARS = 44


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("svg", force=True)
    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "newsletter-report",
            "font.family": "sans-serif",
            "font.size": 10,
            "text.usetex": False,
            "text.parse_math": False,
            "axes.edgecolor": MACHINE,
            "axes.labelcolor": INK,
            "xtick.color": INK,
            "ytick.color": INK,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    import matplotlib.pyplot as plt

    return plt


def _svg(figure: Any, label: str) -> str:
    """The figure as an <svg> element for inline use: no XML prologue, no metadata, a title for screen readers."""
    plt = _pyplot()
    buffer = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glyphs missing from matplotlib's font: the browser draws the text
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(figure)
    svg = _METADATA.sub("", _PROLOGUE.sub("", buffer.getvalue(), count=1))
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{_attr(label)}" ', 1)
    return svg.strip()


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _short(text: str, limit: int = _TITLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sent_per_minute(points: Sequence[tuple[datetime, int]]) -> str | None:
    """Messages sent per minute over the send (None: nothing sent)."""
    if not points:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 2.6))
    # every minute from the first to the last, quiet ones included (a pause shows as a gap)
    counts = dict(points)
    first, last = points[0][0], points[-1][0]
    minutes = [first + timedelta(minutes=m) for m in range(int((last - first).total_seconds() // 60) + 1)]
    axes.bar(range(len(minutes)), [counts.get(m, 0) for m in minutes], color=ACCENT, width=0.8)
    step = max(1, len(minutes) // 12)
    axes.set_xticks(range(0, len(minutes), step), [m.strftime("%H:%M") for m in minutes[::step]])
    axes.set_xlim(-0.75, max(len(minutes), 6) - 0.25)  # a short send is not one wide block
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel("messages per minute")
    axes.set_xlabel(f"UTC, {points[0][0]:%Y-%m-%d}")
    return _svg(figure, "Messages sent per minute over the send")


def rates(figures: IssueFigures) -> str:
    """Delivery, bounce and complaint rates, against SES's review thresholds (5 % and 0.1 %)."""
    plt = _pyplot()
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(7.5, 2.6))
    panels = (
        (left, "delivered", figures.delivery_rate, None, ACCENT),
        (
            middle,
            "bounces",
            figures.bounce_rate,
            BOUNCE_REVIEW,
            WARN if figures.bounce_rate >= BOUNCE_REVIEW else ACCENT,
        ),
        (
            right,
            "complaints",
            figures.complaint_rate,
            COMPLAINT_REVIEW,
            WARN if figures.complaint_rate >= COMPLAINT_REVIEW else ACCENT,
        ),
    )
    for axes, name, value, threshold, colour in panels:
        axes.bar([0], [value * 100], color=colour, width=0.5)
        top = max(value * 100, (threshold or 0) * 100) * 1.6 or 1.0
        if threshold is None:
            top = 100.0
        axes.set_ylim(0, top)
        axes.set_xlim(-0.75, 0.75)
        axes.set_xticks([0], [name])
        axes.set_ylabel("% of sent")
        axes.annotate(f"{value * 100:.2f} %", (0, value * 100), ha="center", va="bottom", color=INK)
        if threshold is not None:
            axes.axhline(threshold * 100, color=WARN, linestyle="--", linewidth=1.2)
            axes.annotate(
                f"SES review {threshold * 100:g} %",
                (0.74, threshold * 100),
                ha="right",
                va="bottom",
                color=WARN,
                fontsize=8,
            )
    figure.tight_layout()
    return _svg(figure, "Delivery, bounce and complaint rates against SES's review thresholds")


def clicks_per_paper(figures: IssueFigures, top: int = 10) -> str | None:
    """Readers' clicks per paper (the top `top`), machines' clicks beside them in grey."""
    papers = figures.papers[:top]
    if not papers:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.2, 0.42 * len(papers) + 0.9))  # the titles take the rest
    y = list(range(len(papers)))[::-1]
    axes.barh(y, [p.clicks for p in papers], color=ACCENT, label="readers' clicks")
    axes.barh(
        y,
        [p.machine for p in papers],
        left=[p.clicks for p in papers],
        color=MACHINE,
        label="machines' clicks",
    )
    axes.set_yticks(y, [_short(p.title) for p in papers])
    axes.set_xlabel("clicks")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend(loc="lower right", frameon=False, fontsize=8)
    return _svg(figure, "Clicks per paper")


def languages(figures: IssueFigures) -> str | None:
    """Sent, delivered and opened per language (None: one language only)."""
    if len(figures.languages) < 2:
        return None
    plt = _pyplot()
    names = list(figures.languages)
    figure, axes = plt.subplots(figsize=(7.5, 2.6))
    width = 0.27
    for n, (key, colour) in enumerate((("sent", ACCENT), ("delivered", "#60a5fa"), ("opened", "#16a34a"))):
        axes.bar(
            [i + (n - 1) * width for i in range(len(names))],
            [figures.languages[name].get(key, 0) for name in names],
            width=width,
            color=colour,
            label=key,
        )
    axes.set_xticks(range(len(names)), names)
    axes.set_ylabel("messages")
    axes.legend(frameon=False, fontsize=8)
    return _svg(figure, "Messages per language")


def over_time(lines: Sequence[IssueLine]) -> str | None:
    """Open and click rates, list size and unsubscribes per issue."""
    if not lines:
        return None
    plt = _pyplot()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 4.8), sharex=True)
    x = list(range(len(lines)))
    names = [f"#{line.number}" for line in lines]
    opens = [None if line.open_rate is None else line.open_rate * 100 for line in lines]
    clicks = [None if line.click_rate is None else line.click_rate * 100 for line in lines]
    top.plot(
        x, [v if v is not None else float("nan") for v in opens], marker="o", color=ACCENT, label="open rate"
    )
    top.plot(
        x,
        [v if v is not None else float("nan") for v in clicks],
        marker="s",
        color="#16a34a",
        label="click rate",
    )
    top.set_ylabel("% of sent")
    top.set_ylim(bottom=0)
    top.legend(frameon=False, fontsize=8)
    bottom.bar(x, [line.list_size for line in lines], color="#bfdbfe", label="list size at the send")
    bottom.bar(x, [line.unsubscribes for line in lines], color=WARN, label="unsubscribes after it")
    bottom.set_ylabel("subscribers")
    bottom.set_xticks(x, names)
    bottom.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    return _svg(figure, "Open and click rates, list size and unsubscribes per issue")
