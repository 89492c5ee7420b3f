"""The dashboard in a real browser: headless Chromium, no network, the page from `file://`.

The page's own script records, once every `vegaEmbed` promise has settled, each chart's view and
mark count and every error or Vega warning into `<pre id="render-report">`; Chromium's
`--dump-dom` hands that back. Phone width is tested inside a 390 px iframe, because a headless
window is at least 500 px wide. Screenshots are kept under build/dashboard/ as artefacts; with
DASHBOARD_DOCS_SCREENSHOT=1 the demo's desktop screenshot also replaces docs/dashboard.png.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_dashboard import CONTEXT, RANGE_PARAMETERS, SAMPLE_ROWS, CannedEngine

from chalicelib.dashboard import build_dashboard
from chalicelib.dashboard.page import spec_blocks
from spotify_etl.demo import run_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# In CI a missing browser is a missing install step, never a reason to skip.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed and this machine could not install it "
    "(`make test` runs `apt-get install -y chromium` when it is missing)",
)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "dashboard"
DESKTOP = 1280
PHONE = 390
# Headless, as root, with nothing reaching the network: a proxy that does not exist catches
# any request the page might make (it must make none).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
    "--proxy-server=http://127.0.0.1:9",
    "--virtual-time-budget=20000",
]
DARK = ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]


def _chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    done = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _render(page: Path, tmp_path: Path, *extra: str, element: str = "render-report") -> Any:
    """What the page's script reported after drawing every chart, and the DOM it drew."""
    dom = _chromium(tmp_path, f"--window-size={DESKTOP},2000", *extra, "--dump-dom", page.as_uri())
    found = re.search(rf'<pre id="{element}"[^>]*>(.*?)</pre>', dom, re.S)
    assert found is not None and found.group(1), f"no {element} in the DOM"
    return json.loads(html.unescape(found.group(1))), dom


def _screenshot(
    page: Path, tmp_path: Path, target: Path, width: int, height: int, *extra: str
) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    _chromium(tmp_path, f"--window-size={width},{height}", *extra, f"--screenshot={target}",
              page.as_uri())  # fmt: skip
    assert target.stat().st_size > 10_000  # a picture with something in it
    return target


def _assert_drawn(report: Any, page_text: str) -> None:
    """Every chart the page embeds got a view with at least one mark per row; nothing failed."""
    assert report["done"] is True
    assert report["errors"] == []
    assert report["warnings"] == []
    blocks = spec_blocks(page_text)
    assert blocks
    charts = {entry["key"]: entry for entry in report["charts"]}
    assert set(charts) == set(blocks)
    for key, entry in charts.items():
        rows = len(blocks[key]["data"]["values"])
        assert entry["view"] is True, key
        assert entry["rows"] == rows, key
        assert entry["marks"] >= rows > 0, key


def _phone_frame(page: Path, target: Path) -> Path:
    """A 390 px wide iframe holding the page (srcdoc: same origin, so its report is readable),
    copying the page's render report out once it is written."""
    frame = f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #777; }}
iframe {{ border: 0; width: {PHONE}px; height: 9000px; display: block; }}
</style></head><body>
<iframe id="page" srcdoc="{html.escape(page.read_text(encoding="utf-8"), quote=True)}"></iframe>
<pre id="phone-report" hidden></pre>
<script>
(function poll() {{
  var doc = document.getElementById('page').contentDocument;
  var report = doc && doc.getElementById('render-report');
  if (report && report.textContent) {{
    var out = JSON.parse(report.textContent);
    out.scrollWidth = doc.documentElement.scrollWidth;
    document.getElementById('phone-report').textContent = JSON.stringify(out);
  }} else {{ setTimeout(poll, 50); }}
}})();
</script></body></html>"""
    target.write_text(frame, encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dashboard `make demo` writes, from a two-day demo lake."""
    lake = tmp_path_factory.mktemp("demo") / "lake"
    said: list[str] = []
    assert run_demo(lake=str(lake), days=2, out=said.append, progress=lambda _: None) == 0
    line = next(line for line in said if line.strip().startswith("Dashboard: "))
    page = Path(line.strip().removeprefix("Dashboard: "))
    assert page.is_file() and page.parent == lake.resolve()
    return page


@pytest.fixture(scope="module")
def every_chart_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every chart of §10 from hand-made rows, those whose query has not landed included."""
    dashboard = build_dashboard(CannedEngine(SAMPLE_ROWS), CONTEXT, catalogue=RANGE_PARAMETERS)
    page = tmp_path_factory.mktemp("every") / "every-chart.html"
    page.write_text(dashboard.html, encoding="utf-8")
    return page


def test_the_demo_dashboard_draws_every_chart_without_errors(
    demo_page: Path, tmp_path: Path
) -> None:
    report, dom = _render(demo_page, tmp_path)
    page_text = demo_page.read_text(encoding="utf-8")
    _assert_drawn(report, page_text)
    assert report["width"] <= DESKTOP
    # The ranked list reads in the query's order: "1. <first row>", "2. <second row>", ...
    card = re.search(r'id="card-top_artists".*?</section>', dom, re.S)
    assert card is not None
    drawn = [html.unescape(t) for t in re.findall(r">(\d+\. [^<]*)</text>", card.group(0))]
    rows = spec_blocks(page_text)["top_artists"]["data"]["values"]
    assert drawn == [f"{i}. {row['artist_name']}" for i, row in enumerate(rows, start=1)]
    desktop = _screenshot(
        demo_page, tmp_path, ARTIFACTS / "demo-desktop.png", DESKTOP, min(report["height"], 6000)
    )
    _screenshot(demo_page, tmp_path, ARTIFACTS / "demo-desktop-dark.png", DESKTOP,
                min(report["height"], 6000), *DARK)  # fmt: skip
    if os.environ.get("DASHBOARD_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(desktop, ROOT / "docs" / "dashboard.png")


def test_the_demo_dashboard_fits_a_phone(demo_page: Path, tmp_path: Path) -> None:
    frame = _phone_frame(demo_page, tmp_path / "phone.html")
    report, _ = _render(frame, tmp_path, element="phone-report")
    _assert_drawn(report, demo_page.read_text(encoding="utf-8"))
    assert report["width"] == PHONE
    assert report["scrollWidth"] <= PHONE  # nothing pushes the page sideways
    _screenshot(frame, tmp_path, ARTIFACTS / "demo-phone.png", 500, min(report["height"], 6000))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_chart_of_the_contract_renders_from_its_documented_columns(
    every_chart_page: Path, tmp_path: Path, scheme: str
) -> None:
    extra = DARK if scheme == "dark" else []
    report, _ = _render(every_chart_page, tmp_path, *extra)
    _assert_drawn(report, every_chart_page.read_text(encoding="utf-8"))
    assert len(report["charts"]) == len(spec_blocks(every_chart_page.read_text(encoding="utf-8")))
    _screenshot(every_chart_page, tmp_path, ARTIFACTS / f"every-chart-{scheme}.png", DESKTOP,
                min(report["height"], 6000), *extra)  # fmt: skip
