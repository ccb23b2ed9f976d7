"""The report page: one self-contained HTML file, charts inline, every untrusted value escaped.

Nothing on the page is fetched: CSS is inline, charts are inline SVG, no fonts and no
scripts, and a Content-Security-Policy says so to the browser as well. Titles and
addresses come from content and subscribers, so they are untrusted: Jinja2 escapes
them (autoescape), and each sits in a <bdi> with its own language and direction, so an
Arabic title neither breaks nor reverses the English page around it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment
from markupsafe import Markup

from newsletter.config import text_direction
from newsletter.reports import charts
from newsletter.reports.figures import BOUNCE_REVIEW, COMPLAINT_REVIEW, IssueFigures, IssueLine

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2937;background:#f3f4f6;margin:0}
main{max-width:860px;margin:0 auto;padding:24px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin:0 0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 8px}
.sub{color:#6b7280;margin:0 0 16px}
table{border-collapse:collapse;width:100%}
th,td{text-align:start;padding:4px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
td.n,th.n{text-align:end;font-variant-numeric:tabular-nums;white-space:nowrap}
.figures td.n{font-size:18px;font-weight:600}
.warn{color:#dc2626}.note{color:#6b7280;font-size:13px}
.synthetic{background:#fef3c7;border:1px solid #f59e0b;border-radius:8px;padding:10px 16px;margin:0 0 16px}
svg{max-width:100%;height:auto}
"""

_TEMPLATE = """<!doctype html>
<html lang="en" dir="ltr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{{ heading }}</title>
<style>{{ style }}</style>
</head>
<body><main>
{% block body %}{% endblock %}
<p class="note">Made by <code>newsletter report</code> at {{ made }} (UTC). Nothing on this page is loaded from the network.</p>
</main></body>
</html>
"""

_ISSUE = """{% extends "base" %}{% block body %}
<h1>Issue #{{ f.number }}: <bdi lang="{{ f.language }}" dir="{{ dir }}">{{ f.title }}</bdi></h1>
<p class="sub">{{ f.date }} · <bdi>{{ f.slug }}</bdi></p>
{% if f.synthetic %}
<div class="synthetic" id="synthetic"><strong>Synthetic events.</strong> {{ f.synthetic }} of the opens and clicks
below were made up by <code>newsletter demo</code> to show this report; SES reported none of them.</div>
{% endif %}
<section>
<h2>At a glance</h2>
<table class="figures">
<tr>{% for key in ("recipients", "sent", "delivered", "bounces", "complaints", "failed", "uncertain") %}<th class="n">{{ key }}</th>{% endfor %}</tr>
<tr>{% for key in ("recipients", "sent", "delivered", "bounces", "complaints", "failed", "uncertain") %}<td class="n" data-figure="{{ key }}">{{ f[key] }}</td>{% endfor %}</tr>
</table>
<table>
<tr><th>rate (of sent)</th><th class="n">value</th><th>SES reviews the account at</th></tr>
<tr><td>delivery</td><td class="n" data-figure="delivery_rate">{{ pct(f.delivery_rate) }}</td><td></td></tr>
<tr><td>bounce (permanent)</td><td class="n{{ ' warn' if f.bounce_rate >= bounce_review }}" data-figure="bounce_rate">{{ pct(f.bounce_rate) }}</td><td>{{ pct(bounce_review) }}</td></tr>
<tr><td>complaint</td><td class="n{{ ' warn' if f.complaint_rate >= complaint_review }}" data-figure="complaint_rate">{{ pct(f.complaint_rate) }}</td><td>{{ pct(complaint_review) }}</td></tr>
{% if f.engagement_known %}
<tr><td>opened (readers)</td><td class="n" data-figure="open_rate">{{ pct(f.open_rate) }}</td><td class="note">{{ f.opened }} reader{{ "s" if f.opened != 1 }}; {{ f.machine_opens }} machine open{{ "s" if f.machine_opens != 1 }} left out</td></tr>
<tr><td>clicked (readers)</td><td class="n" data-figure="click_rate">{{ pct(f.click_rate) }}</td><td class="note">{{ f.clicked }} reader{{ "s" if f.clicked != 1 }}, {{ f.clicks }} click{{ "s" if f.clicks != 1 }}; {{ f.machine_clicks }} machine click{{ "s" if f.machine_clicks != 1 }} left out</td></tr>
{% endif %}
</table>
{% if f.sent and not f.delivered %}<p class="note" id="no-deliveries">No delivery reported yet: SES reports deliveries as events (<code>newsletter events poll</code>); the file outbox and SMTP report none.</p>{% endif %}
{% if not f.engagement_known %}<p class="note" id="no-engagement">No opens or clicks recorded: engagement tracking is off (<code>ses.engagement</code>, README "Engagement") or no event has arrived yet.</p>{% endif %}
<p class="note">Machine opens: Apple Mail Privacy Protection's prefetch (Apple's network, a bare user agent, or within seconds of sending). Machine clicks: link scanners (within seconds of sending, or many links at once). Neither counts as a reader.</p>
</section>
<section><h2>Messages sent per minute</h2>
{% if chart_minutes %}{{ chart_minutes }}{% else %}<p class="note">Nothing sent yet.</p>{% endif %}
</section>
<section><h2>Delivery, bounces and complaints</h2>
{{ chart_rates }}
<p class="note">Dashed lines: the rates at which SES puts an account under review (bounces {{ pct(bounce_review) }}, complaints {{ pct(complaint_review) }}).</p>
</section>
{% if f.papers %}
<section><h2>Clicks per paper</h2>
{{ chart_papers }}
<table id="papers">
<tr><th>paper</th><th class="n">readers' clicks</th><th class="n">machines' clicks</th></tr>
{% for p in f.papers %}<tr><td><bdi dir="auto">{{ p.title }}</bdi></td><td class="n" data-paper="{{ p.paper_id }}">{{ p.clicks }}</td><td class="n">{{ p.machine }}</td></tr>
{% endfor %}</table>
</section>
{% endif %}
{% if f.languages|length > 1 %}
<section><h2>Per language</h2>
{{ chart_languages }}
<table id="languages">
<tr><th>language</th><th class="n">recipients</th><th class="n">sent</th><th class="n">delivered</th><th class="n">opened</th></tr>
{% for name, c in f.languages.items() %}<tr><td><bdi>{{ name }}</bdi></td><td class="n">{{ c.get("recipients", 0) }}</td><td class="n" data-language="{{ name }}">{{ c.get("sent", 0) }}</td><td class="n">{{ c.get("delivered", 0) }}</td><td class="n">{{ c.get("opened", 0) }}</td></tr>
{% endfor %}</table>
</section>
{% endif %}
<section><h2>Failures and uncertain recipients</h2>
{% if f.problems %}
<table id="problems">
<tr><th>address</th><th>state</th><th>outcome</th><th>error</th></tr>
{% for p in f.problems %}<tr><td><bdi>{{ p.email }}</bdi></td><td>{{ p.state }}</td><td>{{ p.outcome }}</td><td><bdi dir="auto">{{ p.error }}</bdi></td></tr>
{% endfor %}</table>
<p class="note">Uncertain messages may or may not have left: <code>newsletter send {{ f.slug }} --resend-uncertain</code> sends them again; <code>--retry-failed</code> retries temporary failures.</p>
{% else %}<p class="note">None.</p>{% endif %}
</section>
{% endblock %}"""

_ALL = """{% extends "base" %}{% block body %}
<h1>Every issue</h1>
<p class="sub">{{ lines|length }} issue{{ "s" if lines|length != 1 }} sent</p>
<section><h2>Issues over time</h2>
{% if chart %}{{ chart }}{% else %}<p class="note">No issue has been sent yet.</p>{% endif %}
</section>
<section>
<table id="issues">
<tr><th>#</th><th>date</th><th>issue</th><th class="n">sent</th><th class="n">open rate</th><th class="n">click rate</th><th class="n">list size</th><th class="n">unsubscribes</th></tr>
{% for line in lines %}<tr data-issue="{{ line.slug }}"><td>{{ line.number }}</td><td>{{ line.date }}</td><td><bdi dir="auto">{{ line.title }}</bdi></td><td class="n" data-figure="sent">{{ line.sent }}</td><td class="n" data-figure="open_rate">{{ pct(line.open_rate) if line.open_rate is not none else "–" }}</td><td class="n" data-figure="click_rate">{{ pct(line.click_rate) if line.click_rate is not none else "–" }}</td><td class="n" data-figure="list_size">{{ line.list_size }}</td><td class="n" data-figure="unsubscribes">{{ line.unsubscribes }}</td></tr>
{% endfor %}</table>
<p class="note">Rates are shares of the messages sent, readers only (machine opens and clicks left out); "–": no engagement recorded. List size: subscribers on the list when the send began; unsubscribes: readers who left between this issue's send and the next one's.</p>
</section>
{% endblock %}"""


def percent(value: float) -> str:
    """A rate as the page shows it: two decimals below 1 %, one above."""
    shown = value * 100
    return f"{shown:.2f} %" if shown < 1 else f"{shown:.1f} %"


def _environment() -> Environment:
    from jinja2 import DictLoader

    env = Environment(
        loader=DictLoader({"base": _TEMPLATE, "issue": _ISSUE, "all": _ALL}),
        autoescape=True,
        keep_trailing_newline=True,
    )
    env.globals.update(
        pct=percent,
        style=Markup(_STYLE),
        bounce_review=BOUNCE_REVIEW,
        complaint_review=COMPLAINT_REVIEW,
        made=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    )
    return env


def _chart(svg: str | None) -> Markup | None:
    # matplotlib escapes every label it writes into the SVG (titles included)
    return None if svg is None else Markup(svg)


def issue_page(figures: IssueFigures) -> str:
    """The report of one issue's send."""
    return (
        _environment()
        .get_template("issue")
        .render(
            heading=f"Report: issue #{figures.number}, {figures.title}",
            f=figures,
            dir=text_direction(figures.language),
            chart_minutes=_chart(charts.sent_per_minute(figures.sent_per_minute)),
            chart_rates=_chart(charts.rates(figures)),
            chart_papers=_chart(charts.clicks_per_paper(figures)),
            chart_languages=_chart(charts.languages(figures)),
        )
    )


def all_page(lines: list[IssueLine]) -> str:
    """The report of every issue over time."""
    return (
        _environment()
        .get_template("all")
        .render(heading="Report: every issue", lines=lines, chart=_chart(charts.over_time(lines)))
    )
