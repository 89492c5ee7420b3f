"""The dashboard as one self-contained HTML page (contract §10).

Everything the page needs is in it: the Vega builds (inlined from `vendor/`), the CSS, and each
chart's Vega-Lite spec as a JSON block the page script hands to `vegaEmbed`. It therefore opens
from `file://`, from an e-mail attachment or behind an authorizer, with no network.

The script also writes what it rendered into `<pre id="render-report">` (each chart's view and
mark count, every error): the browser tests read that from the DOM.
"""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from chalicelib.dashboard.charts import Chart, Context, Source

# (package, version, file in vendor/), in load order: vega-lite needs vega, vega-embed both.
VENDORED = (
    ("vega", "6.4.0", "vega.min.js"),
    ("vega-lite", "6.5.0", "vega-lite.min.js"),
    ("vega-embed", "7.3.0", "vega-embed.min.js"),
)
REFRESH_SECONDS = 5


@dataclass(frozen=True)
class Card:
    """One chart as the page shows it: a spec to draw, or a sentence saying why there is none."""

    chart: Chart
    source: Source
    spec: dict[str, Any] | None = None
    message: str | None = None  # no rows in range, or the query failed


def render_page(
    context: Context,
    cards: list[Card],
    *,
    waiting: list[Chart],
    engine: str | None,
    notice: str | None = None,
) -> str:
    """The dashboard: a card per drawable chart, and a line naming those still waiting for
    their named query."""
    body = [_header(context, engine, notice)]
    body.append('<main class="grid">')
    body.extend(_card(context, card) for card in cards)
    body.append("</main>")
    body.append(_footer(waiting))
    body.append('<pre id="render-report" hidden></pre>')
    body.append(f"<script>{_vendor_js()}</script>")
    body.append(f"<script>{_PAGE_JS}</script>")
    return _document(context, "\n".join(body))


def render_preparing(
    context: Context, *, refresh_url: str, finished: int, total: int, notice: str | None = None
) -> str:
    """The answer while Athena is still running: a page that says so and reloads itself at
    `refresh_url`, which names the executions so the next request collects, not restarts."""
    url = html.escape(refresh_url, quote=True)
    body = [
        _header(context, "athena", notice),
        '<main class="grid"><section class="card wide preparing">',
        "<h2>Preparing your dashboard…</h2>",
        f"<p>{finished} of {total} queries have finished. This page refreshes itself in "
        f'{REFRESH_SECONDS} seconds (<a href="{url}">refresh now</a>).</p>',
        "</section></main>",
    ]
    head = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}; url={url}">'
    return _document(context, "\n".join(body), head=head)


def spec_blocks(page: str) -> dict[str, dict[str, Any]]:
    """The Vega-Lite specs embedded in a rendered page, by chart key (for tests and tools that
    want the page's numbers back)."""
    found: dict[str, dict[str, Any]] = {}
    pattern = re.compile(
        r'<script type="application/json" data-chart="([a-z_]+)"[^>]*>(.*?)</script>', re.S
    )
    for key, text in pattern.findall(page):
        found[key] = json.loads(text)
    return found


# --- pieces -------------------------------------------------------------------------------


def _document(context: Context, body: str, *, head: str = "") -> str:
    title = html.escape(f"Listening · {context.range_text} · {context.who}")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"{head}<title>{title}</title>\n"
        f"<style>{_CSS}</style>\n"
        f"<script>{_ERROR_JS}</script>\n"
        f"</head><body>\n{body}\n</body></html>\n"
    )


def _header(context: Context, engine: str | None, notice: str | None) -> str:
    source = {"athena": "Athena", "duckdb": "DuckDB, local lake"}.get(engine or "", engine)
    facts = [context.who, f"times of day in {context.tz}", "dates in UTC"]
    if source:
        facts.append(f"from {source}")
    parts = [
        "<header>",
        '<p class="kicker">spotify-etl · your listening</p>',
        f"<h1>{html.escape(context.range_text)}</h1>",
        f'<p class="meta">{html.escape(" · ".join(facts))}</p>',
    ]
    if notice:
        parts.append(f'<p class="notice">{html.escape(notice)}</p>')
    parts.append("</header>")
    return "\n".join(parts)


def _card(context: Context, card: Card) -> str:
    chart, source = card.chart, card.source
    classes = "card wide" if chart.wide else "card"
    zone = f" · hours in {context.tz}" if source.zone_aware else ""
    sub = html.escape(f"{context.range_text} · {context.who}{zone} · query ")
    parts = [
        f'<section class="{classes}" id="card-{chart.key}" data-query="{source.query}">',
        f"<h2>{html.escape(chart.title)}</h2>",
        f'<p class="sub">{sub}<code>{source.query}</code></p>',
    ]
    if source.note:
        parts.append(f'<p class="note">{html.escape(source.note.replace("`", ""))}</p>')
    if card.spec is not None:
        parts.append(f'<div class="chart" id="chart-{chart.key}"></div>')
        parts.append(
            f'<script type="application/json" data-chart="{chart.key}" '
            f'data-query="{source.query}">{_json_for_script(card.spec)}</script>'
        )
    else:
        parts.append(f'<p class="empty">{html.escape(card.message or chart.empty_text)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _footer(waiting: list[Chart]) -> str:
    versions = ", ".join(f"{name} {version}" for name, version, _ in VENDORED)
    parts = ["<footer>"]
    if waiting:
        names = ", ".join(
            f"{html.escape(c.title.lower())} (<code>{c.sources[0].query}</code>)" for c in waiting
        )
        parts.append(f'<p id="waiting">Not available yet — no such named query here: {names}.</p>')
    parts.append(
        "<p>Every number on this page is a named query's answer, embedded in the page with "
        f"the charts ({html.escape(versions)}): it works offline.</p>"
    )
    parts.append("</footer>")
    return "\n".join(parts)


def _json_for_script(value: Any) -> str:
    """JSON that cannot end its `<script>` element early: `<`, `>` and `&` escaped as \\u."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


@functools.cache
def _vendor_js() -> str:
    """The three builds, read once per process. Their source-map comments are dropped: the
    maps are not shipped, and a browser's developer tools would try to fetch them."""
    folder = resources.files("chalicelib.dashboard") / "vendor"
    scripts = []
    for _, _, name in VENDORED:
        text = (folder / name).read_text(encoding="utf-8")
        lines = [ln for ln in text.splitlines() if not ln.startswith("//# sourceMappingURL=")]
        scripts.append("\n".join(lines))
    return "\n;\n".join(scripts)


_CSS = """
:root { color-scheme: light dark; --bg: #f4f5f7; --card: #ffffff; --text: #15181c;
  --muted: #5d6670; --border: #e2e5e9; --accent: #1db954; --warn: #b54708; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #111214; --card: #1c1d20; --text: #eef0f2; --muted: #a3a9b0;
    --border: #2c2e33; --warn: #f5a35c; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, main, footer { max-width: 1120px; margin: 0 auto; padding: 16px; }
header { padding-top: 28px; }
.kicker { margin: 0; color: var(--accent); font-weight: 600; letter-spacing: .04em;
  text-transform: uppercase; font-size: 12px; }
h1 { margin: 4px 0; font-size: clamp(24px, 6vw, 36px); line-height: 1.15; }
.meta, .sub, .note, footer { color: var(--muted); }
.meta { margin: 0; }
.notice { display: inline-block; margin: 10px 0 0; padding: 4px 10px; border-radius: 10px;
  border: 1px solid var(--warn); color: var(--warn); font-size: 13px; }
.grid { display: grid; gap: 16px;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 440px), 1fr)); }
.card { background: var(--card); border: 1px solid var(--border); border-radius: 14px;
  padding: 16px; min-width: 0; }
.card.wide { grid-column: 1 / -1; }
.card h2 { margin: 0; font-size: 18px; }
.sub { margin: 2px 0 12px; font-size: 12.5px; }
.note { margin: -6px 0 10px; font-size: 12.5px; }
.chart { width: 100%; overflow-x: auto; }
.empty { margin: 24px 0; color: var(--muted); font-style: italic; }
code { font-size: 0.95em; }
footer { font-size: 13px; padding-bottom: 32px; }
.preparing p { margin-bottom: 0; }
a { color: var(--accent); }
"""

# Before the Vega builds, so an error while they load is recorded too.
_ERROR_JS = """
window.renderReport = {charts: [], errors: [], warnings: []};
window.addEventListener('error', function (e) {
  window.renderReport.errors.push(String(e.message || e));
});
window.addEventListener('unhandledrejection', function (e) {
  window.renderReport.errors.push('unhandled rejection: ' + String(e.reason));
});
(function () {
  var error = console.error, warn = console.warn;
  console.error = function () {
    window.renderReport.errors.push(Array.prototype.map.call(arguments, String).join(' '));
    return error.apply(console, arguments);
  };
  console.warn = function () {
    window.renderReport.warnings.push(Array.prototype.map.call(arguments, String).join(' '));
    return warn.apply(console, arguments);
  };
})();
"""

# Draws every chart, light or dark as the reader's system prefers, then reports what it drew.
_PAGE_JS = """
(function () {
  var report = window.renderReport;
  var dark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
  var ink = dark ? '#eef0f2' : '#15181c', muted = dark ? '#a3a9b0' : '#5d6670';
  var grid = dark ? '#2c2e33' : '#e2e5e9';
  var config = {
    background: null,
    font: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
    view: {stroke: null},
    text: {color: ink, fontSize: 12.5},
    axis: {labelColor: muted, titleColor: muted, gridColor: grid, domainColor: grid,
           tickColor: grid, labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'normal'},
    legend: {labelColor: muted, titleColor: muted, labelFontSize: 11, titleFontSize: 11,
             titleFontWeight: 'normal'},
    range: {heatmap: {scheme: dark ? 'darkgreen' : 'greens'}}
  };
  function countMarks(scene) {
    var n = 0;
    (function walk(mark) {
      (mark.items || []).forEach(function (item) {
        if (mark.role === 'mark' && mark.marktype !== 'group') n += 1;
        (item.items || []).forEach(walk);
      });
    })(scene);
    return n;
  }
  var blocks = document.querySelectorAll('script[type="application/json"][data-chart]');
  var jobs = Array.prototype.map.call(blocks, function (block) {
    var key = block.getAttribute('data-chart');
    var entry = {key: key, query: block.getAttribute('data-query'), view: false, marks: 0};
    report.charts.push(entry);
    try {
      var spec = JSON.parse(block.textContent);
      entry.rows = spec.data.values.length;
      return vegaEmbed('#chart-' + key, spec, {actions: false, renderer: 'svg', config: config})
        .then(function (result) {
          entry.view = true;
          entry.marks = countMarks(result.view.scenegraph().root);
        })
        .catch(function (err) { report.errors.push(key + ': ' + err); });
    } catch (err) {
      report.errors.push(key + ': ' + err);
      return Promise.resolve();
    }
  });
  Promise.all(jobs).then(function () {
    report.done = true;
    report.width = document.documentElement.clientWidth;
    report.height = Math.ceil(document.body.getBoundingClientRect().height);
    document.getElementById('render-report').textContent = JSON.stringify(report);
  });
})();
"""
