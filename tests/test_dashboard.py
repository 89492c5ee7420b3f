"""The dashboard (contract §10): every chart's data is its named query's answer.

Three levels: the chart builders on hand-made rows with exactly the columns §6 documents (so the
charts of queries that have not landed yet are ready for them); the page built on the hand-made
query lake (tests/query_fixtures.py) and compared with the queries' own answers, through
`GET /dashboard` and `spotify-etl report`; and Athena under moto, where the queries start
together and a page that cannot finish in time refreshes itself instead of failing.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID
from query_fixtures import build_lake

import app
from chalicelib import queries
from chalicelib import services as services_module
from chalicelib.config import Config
from chalicelib.dashboard import build, charts, collect
from chalicelib.dashboard.build import build_dashboard, parse_request
from chalicelib.dashboard.charts import CHARTS, Context
from chalicelib.dashboard.page import spec_blocks
from chalicelib.queries.athena_engine import AthenaEngine
from chalicelib.queries.duckdb_engine import DuckDBEngine
from chalicelib.services import Services
from spotify_etl import cli

# Contract §6: each named query's columns, in order. The builders are written against these.
COLUMNS: dict[str, list[str]] = {
    "daily_listening": ["date", "plays", "minutes", "distinct_tracks", "distinct_artists"],
    "top_artists": ["artist_id", "artist_name", "plays", "minutes"],
    "top_tracks": ["track_id", "track_name", "artist_names", "plays", "minutes"],
    "genres": ["genre", "plays", "share"],
    "listening_clock": ["hour", "plays", "minutes"],
    "top_albums": ["album_id", "album_name", "artist_names", "plays", "minutes"],
    "top_shows": ["show_name", "episodes", "plays", "minutes"],
    "weekday_hour": ["weekday", "hour", "plays", "minutes"],
    "discoveries": ["month", "new_artists", "new_tracks", "plays_of_new"],
    "skips": ["track_id", "track_name", "artist_names", "plays", "skipped", "skip_rate"],
    "coverage": ["date", "plays", "api_plays", "export_plays", "both_plays", "open_gap_minutes"],
}
# What a range query of §6 declares (for a catalogue in which every §10 query exists).
RANGE_PARAMETERS = {
    name: ["start", "end", "user"]
    + (["limit"] if name in {"top_artists", "top_tracks", "genres", "top_albums", "top_shows",
                             "skips"} else [])
    + (["tz"] if name in {"listening_clock", "weekday_hour"} else [])
    for name in COLUMNS
}  # fmt: skip


def _rows(name: str, *values: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Rows of query `name`: each tuple holds its §6 columns, in order."""
    return [dict(zip(COLUMNS[name], row, strict=True)) for row in values]


# Hand-made answers, one per query, with §6's columns: nulls, ties, long and unsafe names.
SAMPLE_ROWS: dict[str, list[dict[str, Any]]] = {
    "daily_listening": _rows(
        "daily_listening",
        ("2026-11-02", 4, 13.25, 4, 3),
        ("2026-11-05", 1, 3.0, 1, 1),
        ("2026-11-29", 9, 31.5, 7, 5),
    ),
    "top_artists": _rows(
        "top_artists",
        ("A1", "Kraftwerk", 12, 41.5),
        (None, "Known only by name", 3, 9.75),
        ("A9", "</script><b>&amp;", 3, 9.0),
    ),
    "top_tracks": _rows(
        "top_tracks",
        ("T1", "Alpha", "Cleo", 5, 10.0),
        ("T2", "Alpha", "Aurora, Boris", 5, 12.0),  # same name: two rows, two bars
        (None, "local file", None, 1, 1.09),
    ),
    "genres": _rows("genres", ("pop", 7, 0.5833), ("rock", 3, 0.25)),
    "listening_clock": _rows(
        "listening_clock", *((h, {0: 1, 8: 2, 23: 4}.get(h, 0), h * 0.5) for h in range(24))
    ),
    "top_albums": _rows(
        "top_albums",
        ("AL1", "Computer World", "Kraftwerk", 4, 14.5),
        (None, "From the export", "Cleo", 2, 6.0),
    ),
    "top_shows": _rows("top_shows", ("The Daily", 4, 5, 120.5), ("Radiolab", 1, 1, 45.0)),
    "weekday_hour": _rows(
        "weekday_hour",
        *((w, h, (w * h) % 3, (w * h) % 3 * 3.0) for w in range(1, 8) for h in range(24)),
    ),
    "discoveries": _rows("discoveries", ("2026-10", 3, 5, 7), ("2026-11", 1, 2, 2)),
    "skips": _rows(
        "skips",
        ("T7", "Skipped", "Boris", 4, 3, 0.75),
        ("T8", "Kept", "Cleo", 5, 1, 0.2),
    ),
    "coverage": _rows(
        "coverage",
        ("2026-11-01", 3, 1, 1, 1, 0),
        ("2026-11-02", 0, 0, 0, 0, 120),  # a day inside an open gap
        ("2026-11-03", 2, 2, 0, 0, 0),
    ),
}
CONTEXT = Context(start="2026-11-01", end="2026-11-30", user="u1", tz="Europe/Berlin")

# The query lake of tests/query_fixtures.py: plays of u1 and u2 from 03-01 to 03-05.
LAKE_RANGE = {"start": "2026-03-01", "end": "2026-03-04"}


class CannedEngine:
    """An engine answering each query with hand-made rows (or an error), as both engines do."""

    def __init__(
        self, rows: Mapping[str, list[dict[str, Any]]], fail: Mapping[str, str] | None = None
    ) -> None:
        self.rows = rows
        self.fail = dict(fail or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def run(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((name, dict(params)))
        if name in self.fail:
            raise queries.QueryFailedError(self.fail[name])
        return {
            "query": name,
            "columns": COLUMNS[name],
            "rows": [dict(row) for row in self.rows[name]],
            "execution_id": str(uuid.uuid4()),
            "engine": "duckdb",
        }

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        raise queries.UnknownExecution(execution_id)


def _sources() -> list[charts.Source]:
    return [source for chart in CHARTS for source in chart.sources]


def _fields(spec: Any) -> set[str]:
    """Every `field` a spec's encodings name (sort and tooltip entries included)."""
    found: set[str] = set()
    if isinstance(spec, dict):
        if isinstance(spec.get("field"), str):
            found.add(spec["field"])
        for key, value in spec.items():
            if key != "data":
                found |= _fields(value)
    elif isinstance(spec, list):
        for value in spec:
            found |= _fields(value)
    return found


def _derived(spec: Any) -> set[str]:
    """Names the spec's transforms add (`as` of calculate, window, fold), and sequence fields."""
    made: set[str] = set()
    if isinstance(spec, dict):
        alias = spec.get("as")
        if isinstance(alias, str):
            made.add(alias)
        elif isinstance(alias, list):
            made |= set(alias)
        for value in spec.values():
            made |= _derived(value)
    elif isinstance(spec, list):
        for value in spec:
            made |= _derived(value)
    return made


# --- the builders, on rows with §6's columns ------------------------------------------------


def test_sample_rows_have_exactly_the_documented_columns() -> None:
    for name, rows in SAMPLE_ROWS.items():
        assert rows, name
        for row in rows:
            assert list(row) == COLUMNS[name], name
    assert {source.query for source in _sources()} == set(COLUMNS)


@pytest.mark.parametrize("source", _sources(), ids=lambda s: f"{s.query}-{s.build.__name__}")
def test_a_spec_carries_its_query_rows_untouched(source: charts.Source) -> None:
    rows = SAMPLE_ROWS[source.query]
    before = json.dumps(rows, sort_keys=True)
    spec = source.build(rows, CONTEXT)

    assert spec["data"] == {"values": rows}
    assert json.dumps(rows, sort_keys=True) == before  # nothing added to or changed in a row
    assert spec["$schema"].endswith("/vega-lite/v6.json")
    json.dumps(spec, allow_nan=False)  # plain data, nothing a browser could not read
    # Every field the encodings use is a documented column or made by the spec's transforms.
    unknown = _fields(spec) - set(COLUMNS[source.query]) - _derived(spec)
    assert not unknown, unknown
    assert not source.empty(rows)


@pytest.mark.parametrize("source", _sources(), ids=lambda s: f"{s.query}-{s.build.__name__}")
def test_a_query_with_nothing_in_range_counts_as_empty(source: charts.Source) -> None:
    assert source.empty([])
    zeroed = [
        {k: (0 if isinstance(v, int | float) and k not in ("hour", "weekday") else v)
         for k, v in row.items()}
        for row in SAMPLE_ROWS[source.query]
    ]  # fmt: skip
    if source.query in ("listening_clock", "weekday_hour", "coverage"):
        assert source.empty(zeroed)  # every hour/day is answered, with zeros: still nothing


def test_calendar_square_cells_for_a_short_range_and_stretches_for_a_year() -> None:
    rows = SAMPLE_ROWS["daily_listening"]
    short = charts.minutes_calendar(rows, CONTEXT)
    year = charts.minutes_calendar(rows, Context(start="2026-01-01", end="2026-12-31"))
    assert short["width"] == {"step": 26}
    assert year["width"] == "container"
    # The faint background cells cover each day of the range, however few have plays.
    assert short["layer"][0]["data"] == {"sequence": {"start": 0, "stop": 30, "as": "offset"}}
    assert year["layer"][0]["data"]["sequence"]["stop"] == 365


def test_titles_say_the_range_the_user_and_the_zone() -> None:
    page = build_dashboard(CannedEngine(SAMPLE_ROWS), CONTEXT, catalogue=RANGE_PARAMETERS).html
    assert "<title>Listening · 2026-11-01 → 2026-11-30 · user u1</title>" in page
    assert "<h1>2026-11-01 → 2026-11-30</h1>" in page
    assert "user u1 · times of day in Europe/Berlin · dates in UTC" in page
    card = re.search(r'<section[^>]*id="card-time_of_day".*?</section>', page, re.S)
    assert card and "hours in Europe/Berlin" in card.group(0)


# --- which charts are drawn ---------------------------------------------------------------


def test_only_charts_whose_query_exists_are_drawn_and_the_rest_are_named() -> None:
    existing = {q["name"] for q in queries.list_queries()}
    engine = CannedEngine(SAMPLE_ROWS)
    page = build_dashboard(engine, CONTEXT).html
    drawn = spec_blocks(page)

    expected = {c.key for c in CHARTS if any(s.query in existing for s in c.sources)}
    assert set(drawn) == expected
    assert {name for name, _ in engine.calls} <= existing
    waiting = [c for c in CHARTS if c.key not in expected]
    for chart in waiting:
        assert f"<code>{chart.sources[0].query}</code>" in page
    assert ('id="waiting"' in page) == bool(waiting)


def test_time_of_day_uses_weekday_hour_once_it_exists_else_listening_clock() -> None:
    with_grid = build_dashboard(CannedEngine(SAMPLE_ROWS), CONTEXT, catalogue=RANGE_PARAMETERS)
    without = {k: v for k, v in RANGE_PARAMETERS.items() if k != "weekday_hour"}
    with_clock = build_dashboard(CannedEngine(SAMPLE_ROWS), CONTEXT, catalogue=without)

    assert (
        spec_blocks(with_grid.html)["time_of_day"]["data"]["values"] == SAMPLE_ROWS["weekday_hour"]
    )
    assert (
        spec_blocks(with_clock.html)["time_of_day"]["data"]["values"]
        == SAMPLE_ROWS["listening_clock"]
    )


def test_every_query_gets_only_the_parameters_it_declares() -> None:
    engine = CannedEngine(SAMPLE_ROWS)
    build_dashboard(engine, CONTEXT, catalogue=RANGE_PARAMETERS)
    sent = dict(engine.calls)
    # Each query once (daily_listening draws two charts); the clock only stands in for the grid.
    assert len(engine.calls) == len(sent)
    assert set(sent) == set(COLUMNS) - {"listening_clock"}
    for name, params in sent.items():
        assert set(params) == set(RANGE_PARAMETERS[name])
        assert params["start"] == "2026-11-01" and params["user"] == "u1"
    assert sent["weekday_hour"]["tz"] == "Europe/Berlin"
    assert sent["top_artists"]["limit"] == str(charts.TOP_LIMIT)


def test_a_chart_with_no_rows_says_so_instead_of_drawing() -> None:
    rows = {**SAMPLE_ROWS, "top_artists": [], "weekday_hour": [
        {**row, "plays": 0, "minutes": 0.0} for row in SAMPLE_ROWS["weekday_hour"]
    ]}  # fmt: skip
    page = build_dashboard(CannedEngine(rows), CONTEXT, catalogue=RANGE_PARAMETERS).html
    drawn = spec_blocks(page)
    assert "top_artists" not in drawn and "time_of_day" not in drawn
    for key in ("top_artists", "time_of_day"):
        chart = next(c for c in CHARTS if c.key == key)
        card = re.search(rf'<section[^>]*id="card-{key}".*?</section>', page, re.S)
        assert card is not None
        assert html.escape(chart.empty_text) in card.group(0)
        assert 'class="chart"' not in card.group(0)


def test_a_failed_query_is_a_note_on_its_card_not_an_error_page() -> None:
    engine = CannedEngine(SAMPLE_ROWS, fail={"genres": "Athena query x failed: boom"})
    dashboard = build_dashboard(engine, CONTEXT, catalogue=RANGE_PARAMETERS)
    assert dashboard.ready
    assert "The genres query failed: Athena query x failed: boom" in dashboard.html
    assert "genres" not in spec_blocks(dashboard.html)
    assert "top_tracks" in spec_blocks(dashboard.html)


def test_an_aws_error_is_a_note_on_its_card_too() -> None:
    from botocore.exceptions import ClientError

    class Throttled(CannedEngine):
        def run(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
            if name == "top_tracks":
                error = {"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}
                raise ClientError(error, "StartQueryExecution")
            return super().run(name, params)

    dashboard = build_dashboard(Throttled(SAMPLE_ROWS), CONTEXT, catalogue=RANGE_PARAMETERS)
    assert dashboard.ready
    assert "The top_tracks query failed: ClientError: " in dashboard.html
    assert "TooManyRequestsException" in dashboard.html
    assert "top_artists" in spec_blocks(dashboard.html)


def test_the_lambda_side_imports_no_plotting_or_dataframe_library() -> None:
    code = (
        "import sys, chalicelib.dashboard as d; "
        "heavy = {'pandas', 'pyarrow', 'numpy', 'duckdb', 'matplotlib', 'altair', 'spotify_etl'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_text_from_the_data_cannot_break_out_of_the_page() -> None:
    page = build_dashboard(CannedEngine(SAMPLE_ROWS), CONTEXT, catalogue=RANGE_PARAMETERS).html
    assert "</script><b>" not in page
    assert (
        spec_blocks(page)["top_artists"]["data"]["values"][2]["artist_name"] == "</script><b>&amp;"
    )


def test_the_page_inlines_the_vendored_vega_builds_and_fetches_nothing() -> None:
    page = build_dashboard(CannedEngine(SAMPLE_ROWS), CONTEXT, catalogue=RANGE_PARAMETERS).html
    vendor = Path(charts.__file__).parent / "vendor"
    for name in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js"):
        body = (vendor / name).read_text(encoding="utf-8").splitlines()[0][:2000]
        assert body in page
        assert (vendor / f"LICENSE.{name.removesuffix('.min.js')}").is_file()
    assert "sourceMappingURL" not in page
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', page)


# --- on a real lake: the page's numbers are the queries' answers ----------------------------


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return build_lake(tmp_path / "lake")


@pytest.fixture
def http(lake: Path) -> Iterator[Any]:
    services_module.use(Services(Config(lake_uri=str(lake), query_engine="duckdb")))
    with Client(app.app, stage_name="local") as client:
        yield client.http


def _assert_specs_equal_queries(page: str, engine: Any, params: Mapping[str, str]) -> int:
    """Each drawn chart's data equals its query's rows; an empty answer draws no chart.
    Returns how many charts were drawn."""
    context, _ = parse_request(params)
    existing = {q["name"]: [p["name"] for p in q["parameters"]] for q in queries.list_queries()}
    planned, _ = charts.plan(context, existing.keys(), existing)
    blocks = spec_blocks(page)
    for item in planned:
        answer = engine.run(item.source.query, item.params)
        if item.source.empty(answer["rows"]):
            assert item.chart.key not in blocks
            continue
        assert answer["columns"] == COLUMNS[item.source.query]
        assert blocks[item.chart.key]["data"]["values"] == answer["rows"], item.chart.key
    assert set(blocks) <= {item.chart.key for item in planned}
    return len(blocks)


@pytest.mark.parametrize(
    "params",
    [
        {**LAKE_RANGE},
        {**LAKE_RANGE, "user": "u1", "tz": "Europe/Berlin"},
        {"start": "2026-03-03", "end": "2026-03-03", "user": "u2"},  # a day without plays
    ],
    ids=["all-users", "u1-berlin", "empty-day"],
)
def test_get_dashboard_data_equals_the_named_queries(
    http: Any, lake: Path, params: dict[str, str]
) -> None:
    response = http.get("/dashboard?" + urllib.parse.urlencode(params))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode() if isinstance(response.body, bytes) else response.body
    drawn = _assert_specs_equal_queries(page, DuckDBEngine(lake), params)
    assert (drawn == 0) == (params["start"] == "2026-03-03")
    # ...and equal to what `GET /queries/{name}` answers over HTTP.
    plain = {k: v for k, v in params.items() if k != "tz"}
    query = urllib.parse.urlencode({**plain, "limit": charts.TOP_LIMIT})
    artists = json.loads(http.get(f"/queries/top_artists?{query}").body)["rows"]
    blocks = spec_blocks(page)
    if artists:
        assert blocks["top_artists"]["data"]["values"] == artists
    else:
        assert "top_artists" not in blocks and "No artists played in this range." in page


def test_dashboard_on_the_fixture_lake_has_known_numbers(http: Any) -> None:
    """Independent of the engine: u1 on 03-01 played P1, P2, P3 (tests/query_fixtures.py)."""
    page = http.get("/dashboard?start=2026-03-01&end=2026-03-01&user=u1").body.decode()
    daily = spec_blocks(page)["daily"]["data"]["values"]
    assert [(row["date"], row["plays"]) for row in daily] == [("2026-03-01", 3)]


def test_the_landed_history_queries_draw_their_charts_on_the_fixture_lake(
    http: Any, lake: Path
) -> None:
    """weekday_hour, top_albums and discoveries exist: their charts are drawn from their own
    answers (the grid, not the clock, for "when you listen"); every chart of §10 has its query
    now, so none is listed as not available."""
    params = {**LAKE_RANGE, "tz": "Asia/Kolkata"}
    page = http.get("/dashboard?" + urllib.parse.urlencode(params)).body.decode()
    blocks = spec_blocks(page)
    engine = DuckDBEngine(lake)
    limit = str(charts.TOP_LIMIT)
    for key, name, query_params in [
        ("time_of_day", "weekday_hour", params),
        ("top_albums", "top_albums", {**LAKE_RANGE, "limit": limit}),
        ("discoveries", "discoveries", LAKE_RANGE),
        ("coverage", "coverage", LAKE_RANGE),
    ]:
        answer = engine.run(name, query_params)
        assert answer["rows"], name
        assert blocks[key]["data"]["values"] == answer["rows"], key
    assert len(blocks["time_of_day"]["data"]["values"]) == 7 * 24
    assert 'id="waiting"' not in page and "Not available yet" not in page
    # The API never reports play times or episodes: no skips, no podcasts, and the cards say so.
    for key in ("skips", "podcasts"):
        chart = next(c for c in CHARTS if c.key == key)
        card = re.search(rf'<section[^>]*id="card-{key}".*?</section>', page, re.S)
        assert key not in blocks and card is not None
        assert html.escape(chart.empty_text) in card.group(0)


# The fixture lake's history export (tests/query_fixtures.py, January 2027).
EXPORT_RANGE = {"start": "2026-12-31", "end": "2027-01-08"}


def test_podcasts_skips_and_coverage_draw_from_their_queries(http: Any, lake: Path) -> None:
    """On the export's days the three charts of the history queries are drawn, each from its
    query's own answer; coverage marks the days with open gaps."""
    page = http.get("/dashboard?" + urllib.parse.urlencode(EXPORT_RANGE)).body.decode()
    blocks = spec_blocks(page)
    engine = DuckDBEngine(lake)
    limit = str(charts.TOP_LIMIT)
    for key, name, query_params in [
        ("podcasts", "top_shows", {**EXPORT_RANGE, "limit": limit}),
        ("skips", "skips", {**EXPORT_RANGE, "limit": limit}),
        ("coverage", "coverage", EXPORT_RANGE),
    ]:
        answer = engine.run(name, query_params)
        assert answer["rows"], name
        assert blocks[key]["data"]["values"] == answer["rows"], key
    coverage = blocks["coverage"]["data"]["values"]
    assert len(coverage) == 9  # every date of the range, those without plays included
    gap_days = [row["date"] for row in coverage if row["open_gap_minutes"] > 0]
    assert gap_days == ["2026-12-31", "2027-01-01", "2027-01-04", "2027-01-05", "2027-01-07"]
    marked = next(layer for layer in blocks["coverage"]["layer"] if "transform" in layer)
    assert marked["transform"] == [{"filter": "datum.open_gap_minutes > 0"}]
    assert [row["show_name"] for row in blocks["podcasts"]["data"]["values"]] == [
        "The Daily", "Dune", "Radiolab",
    ]  # fmt: skip


def test_coverage_of_days_without_plays_or_gaps_says_so(http: Any) -> None:
    """coverage answers every date (zeros included): nothing to draw is still nothing."""
    page = http.get("/dashboard?start=2027-01-02&end=2027-01-03").body.decode()
    assert "coverage" not in spec_blocks(page)
    chart = next(c for c in CHARTS if c.key == "coverage")
    assert html.escape(chart.empty_text) in page


BAD_PARAMS = [
    "start=2026-03-04&end=2026-03-01",  # start after end
    "start=2026-13-01&end=2026-03-04",
    "start=2026-03-01'%20OR%201=1&end=2026-03-04",
    "start=2026-03-01&end=2026-03-04&tz=Mars/Olympus",
    "start=2026-03-01&end=2026-03-04&user=..%2Fetc",
    "start=2026-03-01&end=2026-03-04&colour=blue",
    "end=2026-03-04",
]


@pytest.mark.parametrize("query", BAD_PARAMS)
def test_bad_parameters_get_the_same_400_as_queries(http: Any, query: str) -> None:
    response = http.get(f"/dashboard?{query}")
    assert response.status_code == 400
    body = json.loads(response.body)
    assert body["Code"] == "BadRequestError"
    same = http.get(f"/queries/listening_clock?{query}")
    assert same.status_code == 400
    message = json.loads(same.body)["Message"]
    if "colour" in query:  # the allowed names differ; the refusal is the same
        assert body["Message"].startswith("unknown parameter(s): colour (allowed: start, end")
    else:
        assert body["Message"] == message


@pytest.mark.parametrize("pending", ["daily_listening", "x:not!an-id", "Daily:abc"])
def test_a_malformed_pending_list_is_a_400(http: Any, pending: str) -> None:
    response = http.get(f"/dashboard?start=2026-03-01&end=2026-03-04&pending={pending}")
    assert response.status_code == 400
    assert json.loads(response.body)["Message"].startswith("pending:")


def test_report_writes_the_same_page_data(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("LAKE_URI", str(lake))
    monkeypatch.delenv("QUERY_ENGINE", raising=False)
    target = tmp_path / "out" / "wrapped.html"
    code = cli.main(["report", "--html", str(target), "--start", "2026-03-01",
                     "--end", "2026-03-04", "--user", "u1", "--tz", "Asia/Tokyo"])  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out.strip() == str(target)
    params = {**LAKE_RANGE, "user": "u1", "tz": "Asia/Tokyo"}
    page = target.read_text(encoding="utf-8")
    assert _assert_specs_equal_queries(page, DuckDBEngine(lake), params) >= 5


@pytest.mark.parametrize(
    "argv",
    [
        ["--start", "2026-03-04", "--end", "2026-03-01"],
        ["--start", "2026-03-01", "--end", "2026-03-04", "--tz", "Mars/Olympus"],
        ["--start", "2026-03-01", "--end", "2026-03-04", "--user", "no/slashes"],
        ["--start", "March", "--end", "2026-03-04"],
    ],
)
def test_report_with_bad_parameters_exits_2_with_the_api_message(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], capsys: Any
) -> None:
    monkeypatch.setenv("LAKE_URI", str(lake))
    target = tmp_path / "never.html"
    code = cli.main(["report", "--html", str(target), *argv])
    assert code == 2
    values = dict(zip(argv[::2], argv[1::2], strict=True))
    params = {k.removeprefix("--"): v for k, v in values.items()}
    with pytest.raises(queries.QueryParameterError) as expected:
        parse_request(params)
    assert capsys.readouterr().err == f"spotify-etl: {expected.value}\n"
    assert not target.exists()


def test_report_without_its_required_options_is_a_usage_error(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["report", "--html", "x.html", "--start", "2026-03-01"])
    assert exit_.value.code == 2
    assert "--end" in capsys.readouterr().err


# --- Athena (moto): queries run together; slow ones give a page that refreshes itself -------

WORKGROUP = "spotify-etl-test"
_ATHENA_TYPES = {
    "date": "date", "month": "varchar", "share": "double", "skip_rate": "double",
    "minutes": "double", "hour": "integer", "weekday": "integer",
}  # fmt: skip


def _athena_type(column: str, value: Any) -> str:
    if column in _ATHENA_TYPES:
        return _ATHENA_TYPES[column]
    return "bigint" if isinstance(value, int) else "varchar"


def _seed(backend: Any, name: str) -> None:
    """One query's hand-made rows as GetQueryResults returns them: a header, then text cells."""
    rows = SAMPLE_ROWS[name]
    columns = COLUMNS[name]
    header = {"Data": [{"VarCharValue": column} for column in columns]}
    body = [
        {"Data": [{} if row[c] is None else {"VarCharValue": str(row[c])} for c in columns]}
        for row in rows
    ]
    info = [
        {"Name": c, "Label": c, "Type": _athena_type(c, rows[0][c]), "CatalogName": "hive",
         "Nullable": "UNKNOWN"}
        for c in columns
    ]  # fmt: skip
    backend.query_results_queue.append(QueryResults(rows=[header, *body], column_info=info))


class Recorder:
    """Wraps the boto3 Athena client: records each call in order; can hold executions RUNNING."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.exceptions = client.exceptions
        self.calls: list[str] = []
        self.hold_running = False

    def start_query_execution(self, **request: Any) -> Any:
        self.calls.append("start")
        return self.client.start_query_execution(**request)

    def get_query_execution(self, **request: Any) -> Any:
        self.calls.append("status")
        try:
            answer = self.client.get_query_execution(**request)
        except KeyError:  # moto's answer to an id it never issued; Athena refuses the request
            error = {"Error": {"Code": "InvalidRequestException", "Message": "no such id"}}
            raise self.exceptions.InvalidRequestException(error, "GetQueryExecution") from None
        if self.hold_running:
            answer["QueryExecution"]["Status"]["State"] = "RUNNING"
        return answer

    def get_query_results(self, **request: Any) -> Any:
        self.calls.append("results")
        return self.client.get_query_results(**request)


@pytest.fixture
def athena() -> Iterator[tuple[Recorder, Any]]:
    with mock_aws():
        client = boto3.client("athena", region_name="us-east-1")
        client.create_work_group(Name=WORKGROUP)
        yield Recorder(client), athena_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]


@pytest.fixture
def athena_http(athena: tuple[Recorder, Any]) -> Iterator[Any]:
    recorder, _ = athena
    config = Config(
        lake_uri="s3://spotify-etl-test-lake",
        query_engine="athena",
        athena_workgroup=WORKGROUP,
        glue_database="spotify_etl_test",
        aws_region="us-east-1",
    )
    services_module.use(Services(config, boto_client=lambda service: recorder))
    with Client(app.app, stage_name="local") as client:
        yield client.http


def _planned_queries() -> list[str]:
    existing = {q["name"]: [p["name"] for p in q["parameters"]] for q in queries.list_queries()}
    planned, _ = charts.plan(CONTEXT, existing.keys(), existing)
    return list(dict.fromkeys(p.source.query for p in planned))


def test_athena_answers_fill_the_page(athena: tuple[Recorder, Any], athena_http: Any) -> None:
    recorder, backend = athena
    names = _planned_queries()
    for name in names:  # moto hands out seeded results in the order executions start
        _seed(backend, name)

    response = athena_http.get(
        "/dashboard?start=2026-11-01&end=2026-11-30&user=u1&tz=Europe/Berlin"
    )

    assert response.status_code == 200
    page = response.body.decode()
    assert 'http-equiv="refresh"' not in page
    assert recorder.calls.count("start") == len(names)  # each query once, none twice
    blocks = spec_blocks(page)
    for planned in charts.plan(CONTEXT, names, {n: RANGE_PARAMETERS[n] for n in names})[0]:
        assert blocks[planned.chart.key]["data"]["values"] == SAMPLE_ROWS[planned.source.query]


def test_athena_queries_overlap_when_they_take_a_while(athena: tuple[Recorder, Any]) -> None:
    """Executions held RUNNING for a few polls: all are started before the first poll."""
    recorder, backend = athena
    names = _planned_queries()
    for name in names:
        _seed(backend, name)
    engine = AthenaEngine(recorder, workgroup=WORKGROUP, database="db")
    clock = FakeClock()
    polls = {"left": 3 * len(names)}

    def status_then_finish(**request: Any) -> Any:
        polls["left"] -= 1
        recorder.hold_running = polls["left"] > 0
        return Recorder.get_query_execution(recorder, **request)

    recorder.get_query_execution = status_then_finish  # type: ignore[method-assign]
    dashboard = build_dashboard(engine, CONTEXT, sleep=clock.sleep, clock=clock)

    assert dashboard.ready
    starts = [i for i, call in enumerate(recorder.calls) if call == "start"]
    assert len(starts) == len(names)
    assert max(starts) < recorder.calls.index("results")  # nothing read before all started
    assert clock.sleeps and all(s <= collect.POLL_SECONDS for s in clock.sleeps)
    assert (
        spec_blocks(dashboard.html)["top_artists"]["data"]["values"] == SAMPLE_ROWS["top_artists"]
    )


def test_athena_still_running_answers_a_page_that_refreshes_and_then_collects(
    athena: tuple[Recorder, Any], athena_http: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, backend = athena
    monkeypatch.setattr(build, "REQUEST_BUDGET_SECONDS", 0.3)
    recorder.hold_running = True
    names = _planned_queries()
    for name in names:
        _seed(backend, name)

    first = athena_http.get("/dashboard?start=2026-11-01&end=2026-11-30&user=u1&tz=Europe/Berlin")

    assert first.status_code == 200
    assert first.headers["Content-Type"].startswith("text/html")
    page = first.body.decode()
    refresh = re.search(r'<meta http-equiv="refresh" content="(\d+); url=([^"]+)">', page)
    assert refresh is not None
    assert "Preparing your dashboard" in page and f"0 of {len(names)} queries" in page
    assert not spec_blocks(page)
    url = html.unescape(refresh.group(2))
    assert url.startswith("?")
    query = urllib.parse.parse_qs(url[1:])
    assert query["start"] == ["2026-11-01"] and query["tz"] == ["Europe/Berlin"]
    assert query["user"] == ["u1"]
    pending = dict(pair.split(":") for pair in query["pending"][0].split(","))
    assert sorted(pending) == sorted(names)
    started = recorder.calls.count("start")
    assert started == len(names)

    recorder.hold_running = False  # Athena finishes meanwhile
    second = athena_http.get("/dashboard" + url)

    assert second.status_code == 200
    assert recorder.calls.count("start") == started  # collected, not started again
    page = second.body.decode()
    assert 'http-equiv="refresh"' not in page
    assert spec_blocks(page)["top_tracks"]["data"]["values"] == SAMPLE_ROWS["top_tracks"]


def test_an_unknown_pending_execution_is_started_afresh(
    athena: tuple[Recorder, Any], athena_http: Any
) -> None:
    recorder, backend = athena
    names = _planned_queries()
    for name in names:
        _seed(backend, name)
    stranger = "0a0a0a0a-0000-4000-8000-000000000000"
    response = athena_http.get(
        f"/dashboard?start=2026-11-01&end=2026-11-30&pending=top_artists:{stranger}"
    )
    assert response.status_code == 200
    assert recorder.calls.count("start") == len(names)
    assert "top_artists" in spec_blocks(response.body.decode())


class FakeClock:
    """`time.monotonic` and `time.sleep` for tests: sleeping moves the clock, instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
