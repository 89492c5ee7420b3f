"""The notebook API (contract §11): the lake's answers as DataFrames.

Local lake: each named query's DataFrame is checked against what the REST API answers on the same
lake (the Chalice test client), `table()` against the Parquet files themselves, and bad input
against the API's own 4xx messages. Athena: moto with seeded results, as in
tests/test_queries_athena.py; moto runs no SQL, so the tests check the SQL that was sent and how
the answer was typed.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from chalice.test import Client
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID
from query_fixtures import build_lake

import app
import spotify_etl
from chalicelib import layout
from chalicelib import services as services_module
from chalicelib.config import Config, load_config
from chalicelib.queries import get_query, list_queries
from chalicelib.queries.prepare import prepare
from chalicelib.services import Services
from chalicelib.tables import TABLES
from spotify_etl.bootstrap import stage_config
from spotify_etl.notebook import Lake, LakeError, LocalTables, lake_for, result_kinds

RANGE = {"start": "2026-03-01", "end": "2026-03-04"}
# Queries whose rows need the fixture's history export (its plays lie in January 2027).
EXPORT_RANGE = {"start": "2026-12-31", "end": "2027-02-28"}
EXPORT_QUERIES = ("skips", "top_shows")
# The plays columns a history export fills (contract §4), after the API's five.
EXPORT_COLUMNS = len(TABLES["plays"].columns) - 5
# Parameters that select data in tests/query_fixtures.py, by parameter name; `start`/`end` and
# any query added later take generic values from their declarations (see `_params_for`).
FIXTURE_PARAMS = {
    "playlist_changes": {"playlist": "PL1", "date": "2026-03-04", "user": "u1"},
    "top_items_movement": {
        "item_type": "artist", "time_range": "short_term", "date": "2026-03-03", "user": "u1",
    },
}  # fmt: skip


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    return build_lake(tmp_path / "lake")


@pytest.fixture
def config(lake_dir: Path) -> Config:
    return Config(lake_uri=str(lake_dir), query_engine="duckdb")


@pytest.fixture
def lake(config: Config) -> Lake:
    return lake_for(config)


@pytest.fixture
def http(config: Config) -> Iterator[Any]:
    """The REST API on the same lake."""
    services_module.use(Services(config))
    with Client(app.app, stage_name="local") as client:
        yield client.http


def _get(http: Any, name: str, params: dict[str, str]) -> Any:
    response = http.get(f"/queries/{name}?{urllib.parse.urlencode(params)}")
    return response.status_code, json.loads(response.body)


def _params_for(name: str, *, with_user: bool) -> dict[str, str]:
    if name in FIXTURE_PARAMS:
        return dict(FIXTURE_PARAMS[name])
    params: dict[str, str] = {}
    dates = EXPORT_RANGE if name in EXPORT_QUERIES else RANGE
    for parameter in get_query(name).parameters:
        if parameter.name in dates:
            params[parameter.name] = dates[parameter.name]
        elif parameter.name == "user" and (with_user or parameter.required):
            params["user"] = "u1"
        elif parameter.type == "tz":
            params["tz"] = "Europe/Berlin"  # not the default, so the zone is really passed on
        elif parameter.required:
            pytest.skip(f"{name}: no fixture value for {parameter.name}; add it to FIXTURE_PARAMS")
    return params


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame's rows back in the API's JSON shape, to compare with its answer."""
    return [{c: _json_cell(v) for c, v in row.items()} for row in frame.to_dict("records")]


def _json_cell(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        if value.tz is None:
            assert value == value.normalize(), "a date column holds a time of day"
            return value.date().isoformat()
        return layout.iso(value.to_pydatetime())
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- named queries on the local lake ----------------------------------------------------


def _cases() -> list[tuple[str, bool]]:
    cases = []
    for query in list_queries():
        optional_user = any(p["name"] == "user" and not p["required"] for p in query["parameters"])
        cases.append((query["name"], False))
        if optional_user:
            cases.append((query["name"], True))
    return cases


@pytest.mark.parametrize(("name", "with_user"), _cases())
def test_each_named_query_frame_equals_the_api_answer(
    lake: Lake, http: Any, name: str, with_user: bool
) -> None:
    params = _params_for(name, with_user=with_user)
    status, body = _get(http, name, params)
    assert status == 200, body

    frame = lake.query(name, **params)

    assert list(frame.columns) == body["columns"]
    assert json_rows(frame) == body["rows"]
    assert len(frame) > 0, f"{name} {params}: the fixture lake should answer with rows"


def test_columns_are_typed(lake: Lake) -> None:
    daily = lake.query("daily_listening", **RANGE)
    assert str(daily["date"].dtype) == "datetime64[ns]"
    assert daily["date"].tolist() == [pd.Timestamp(d) for d in ("2026-03-01", "2026-03-02",
                                                                "2026-03-04")]  # fmt: skip
    for count in ("plays", "distinct_tracks", "distinct_artists"):
        assert str(daily[count].dtype) == "Int64"
    assert str(daily["minutes"].dtype) == "float64"

    # A new item has no previous rank: a nullable integer keeps the other ranks integers.
    movement = lake.query("top_items_movement", **FIXTURE_PARAMS["top_items_movement"])
    assert str(movement["previous_rank"].dtype) == "Int64"
    assert movement["previous_rank"].isna().any() and movement["previous_rank"].notna().any()
    assert str(movement["item_id"].dtype) == "string"

    genres = lake.query("genres", **RANGE)
    assert str(genres["share"].dtype) == "float64"


def test_an_empty_answer_keeps_its_columns_and_types(lake: Lake) -> None:
    frame = lake.query("top_artists", start="2028-01-01", end="2028-01-31")
    assert frame.empty
    assert list(frame.columns) == ["artist_id", "artist_name", "plays", "minutes"]
    assert [str(t) for t in frame.dtypes] == ["string", "string", "Int64", "float64"]


def test_result_kinds_come_from_the_query_sql() -> None:
    """Every column of every query gets a kind, and the ones §6 names have the right one."""
    for query in list_queries():
        kinds = result_kinds(query["name"])
        assert set(kinds.values()) <= {"date", "timestamp", "int", "float", "boolean", "string",
                                       "list"}  # fmt: skip
    assert result_kinds("daily_listening") == {
        "date": "date", "plays": "int", "minutes": "float", "distinct_tracks": "int",
        "distinct_artists": "int",
    }  # fmt: skip
    assert result_kinds("listening_clock")["hour"] == "int"


def test_python_dates_ints_and_none_are_accepted(lake: Lake) -> None:
    by_text = lake.query("top_tracks", start="2026-03-01", end="2026-03-04", limit="2")
    by_python = lake.query(
        "top_tracks", start=date(2026, 3, 1), end=datetime(2026, 3, 4, 12), limit=2, user=None
    )
    pd.testing.assert_frame_equal(by_text, by_python)
    assert len(by_text) == 2


def test_the_catalogue_is_the_apis(lake: Lake, http: Any) -> None:
    listed = json.loads(http.get("/queries").body)["queries"]
    frame = lake.queries()
    assert list(frame.columns) == ["name", "description", "parameters"]
    assert frame.to_dict("records") == listed


@pytest.mark.parametrize(
    ("name", "params", "status"),
    [
        ("no_such_query", {}, 404),
        ("top_artists", {"start": "2026-11-02", "end": "2026-11-01"}, 400),
        ("top_artists", {"start": "2026-11-01", "end": "2026-11-02", "limit": "1001"}, 400),
        ("top_artists", {"start": "2026-11-01", "end": "2026-11-02", "colour": "blue"}, 400),
        ("top_artists", {"start": "2026-11-01' OR 1=1", "end": "2026-11-02"}, 400),
        ("listening_clock", {"start": "2026-11-01", "end": "2026-11-02", "tz": "Mars/Olympus"},
         400),
        ("playlist_changes", {"playlist": "p", "date": "2026-11-01"}, 400),
        ("top_items_movement", {"item_type": "album", "time_range": "short_term",
                                "date": "2026-11-01", "user": "u1"}, 400),
    ],
)  # fmt: skip
def test_bad_parameters_raise_value_error_with_the_api_message(
    lake: Lake, http: Any, name: str, params: dict[str, str], status: int
) -> None:
    api_status, body = _get(http, name, params)
    assert api_status == status
    with pytest.raises(ValueError) as raised:
        lake.query(name, **params)
    assert isinstance(raised.value, LakeError)
    assert str(raised.value) == body["Message"]


# --- tables on the local lake -------------------------------------------------------------


def _parquet_rows(lake_dir: Path, table: str) -> list[dict[str, Any]]:
    """Every row of a table straight from its files, with the partition value from the path."""
    spec = TABLES[table]
    rows = []
    for path in sorted((lake_dir / "curated" / table).glob("*/*.parquet")):
        value = path.parent.name.split("=", 1)[1]
        for row in pq.read_table(path).to_pylist():
            rows.append({**row, spec.partition.name: date.fromisoformat(value)})
    return rows


def test_table_reads_only_the_partitions_in_range(lake: Lake, lake_dir: Path) -> None:
    expected = [
        row
        for row in _parquet_rows(lake_dir, "plays")
        if date(2026, 3, 2) <= row["played_date"] <= date(2026, 3, 4)
    ]
    expected.sort(key=lambda r: (r["played_date"], r["user_id"], r["played_at"]))
    plays = lake_dir / "curated" / "plays"
    # Not Parquet: reading any of these fails, so a reader that opens them cannot pass.
    for outside in ("played_date=2026-03-01", "played_date=2026-03-05", "played_date=2030-01-01"):
        (plays / outside).mkdir(exist_ok=True)
        (plays / outside / "broken.parquet").write_bytes(b"not parquet")

    frame = lake.table("plays", start="2026-03-02", end="2026-03-04")

    assert list(frame.columns) == [c.name for c in TABLES["plays"].all_columns]
    assert frame["played_at"].tolist() == [pd.Timestamp(r["played_at"]) for r in expected]
    assert frame["track_id"].tolist() == [r["track_id"] or pd.NA for r in expected]
    assert sorted(set(frame["played_date"].dt.date)) == [date(2026, 3, 2), date(2026, 3, 4)]
    chosen = LocalTables(lake_dir).partition_files(TABLES["plays"], "2026-03-02", "2026-03-04")
    assert {p.parent.name for p in chosen} == {"played_date=2026-03-02", "played_date=2026-03-04"}

    # The control: the same broken file inside the range is read, and fails.
    (plays / "played_date=2026-03-04" / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(Exception, match=r"(?i)parquet|magic"):
        lake.table("plays", start="2026-03-02", end="2026-03-04")


def test_table_rows_are_typed_and_filtered_by_user(lake: Lake, lake_dir: Path) -> None:
    frame = lake.table("plays", start=date(2026, 3, 1), end="2026-03-04", user="u2")
    expected = [
        r for r in _parquet_rows(lake_dir, "plays")
        if r["user_id"] == "u2" and r["played_date"] <= date(2026, 3, 4)
    ]  # fmt: skip
    assert len(frame) == len(expected) == 4
    assert set(frame["user_id"]) == {"u2"}
    # u2's 2026 files predate the history export's columns: plays only the API saw.
    assert set(frame["source"]) == {"api"} and set(frame["item_type"]) == {"track"}
    assert frame["ms_played"].isna().all()
    assert str(frame["ms_played"].dtype) == "Int64"
    assert str(frame["played_at"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["played_date"].dtype) == "datetime64[ns]"
    assert str(frame["user_id"].dtype) == "string"
    # played_date is the UTC date of played_at (contract §4)
    assert (frame["played_at"].dt.tz_convert(None).dt.normalize() == frame["played_date"]).all()


def test_table_keeps_lists_and_tells_none_from_empty(lake: Lake) -> None:
    artists = lake.table("artists", start="2026-03-01", end="2026-03-01")
    genres = dict(zip(artists["artist_id"], artists["genres"], strict=True))
    assert genres == {"A1": ["pop", "synth"], "A2": ["rock"], "A3": []}
    later = lake.table("artists", start="2026-03-02", end="2026-03-02")
    assert later["genres"].tolist() == [None, None]  # unknown genres, not "none"
    tracks = lake.table("tracks", start="2026-03-01", end="2026-03-03")
    assert str(tracks["duration_ms"].dtype) == "Int64"
    assert str(tracks["explicit"].dtype) == "boolean"


def test_table_of_a_range_without_files_is_empty_and_typed(lake: Lake, tmp_path: Path) -> None:
    frame = lake.table("playlists", start="2030-01-01", end="2030-12-31")
    assert frame.empty
    assert str(frame["item_count"].dtype) == "Int64"
    assert str(frame["snapshot_date"].dtype) == "datetime64[ns]"
    fresh = lake_for(Config(lake_uri=str(tmp_path / "fresh"), query_engine="duckdb"))
    assert fresh.table("plays", start="2026-03-01", end="2026-03-04").empty


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lk: lk.table("plays", "2026-03-04", "2026-03-01"),
         "start (2026-03-04) is after end (2026-03-01)"),
        (lambda lk: lk.table("plays", "2026-3-1", "2026-03-04"),
         "start: expected a date YYYY-MM-DD"),
        (lambda lk: lk.table("plays", "2026-03-01", "2026-03-04", user="u1' OR '1'='1"),
         "user: expected an id of 1-128 letters, digits, '_', '.', '-', '+' or '@'"),
        (lambda lk: lk.table("tracks", "2026-03-01", "2026-03-04", user="u1"),
         "user: table tracks has no user_id column"),
        (lambda lk: lk.table("../raw", "2026-03-01", "2026-03-04"), "unknown table: '../raw'"),
    ],
)  # fmt: skip
def test_bad_table_arguments_raise_value_error(lake: Lake, call: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        call(lake)


# --- open_lake --------------------------------------------------------------------------


def test_open_lake_reads_lake_uri_from_the_environment(
    lake_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_URI", str(lake_dir))
    monkeypatch.delenv("QUERY_ENGINE", raising=False)
    lake = spotify_etl.open_lake()
    assert isinstance(lake, spotify_etl.Lake)
    assert str(lake_dir.resolve()) in repr(lake)
    assert lake.query("daily_listening", **RANGE)["plays"].sum() == 11


def test_an_unknown_stage_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no stage 'no-such-stage'"):
        spotify_etl.open_lake(stage="no-such-stage")


# --- Athena (moto) ----------------------------------------------------------------------

WORKGROUP = "spotify-etl-nb"
DATABASE = "spotify_etl_nb"


@pytest.fixture
def athena() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("athena", region_name="us-east-1")
        client.create_work_group(Name=WORKGROUP)
        yield client


@pytest.fixture
def athena_lake(athena: Any) -> Lake:
    return lake_for(
        Config(
            lake_uri="s3://nb-lake",
            query_engine="athena",
            athena_workgroup=WORKGROUP,
            glue_database=DATABASE,
            aws_region="us-east-1",
        )
    )


def seed(columns: list[tuple[str, str]], data: list[list[str | None]]) -> None:
    """Queue one result set as GetQueryResults returns it: a header row, then text cells."""
    backend = athena_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    body = [
        {"Data": [{} if cell is None else {"VarCharValue": cell} for cell in row]} for row in data
    ]
    info = [
        {"Name": name, "Label": name, "Type": type_, "CatalogName": "hive", "Nullable": "UNKNOWN"}
        for name, type_ in columns
    ]
    backend.query_results_queue.append(QueryResults(rows=[header, *body], column_info=info))


def _executions(athena: Any) -> list[dict[str, Any]]:
    ids = athena.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"]
    return [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


def test_athena_named_query_is_the_apis_and_typed(athena: Any, athena_lake: Lake) -> None:
    seed(
        [("date", "date"), ("plays", "bigint"), ("minutes", "double"),
         ("distinct_tracks", "bigint"), ("distinct_artists", "bigint")],
        [["2026-03-01", "4", "12.5", "4", "3"], ["2026-03-02", "2", "3.0", "1", None]],
    )  # fmt: skip
    frame = athena_lake.query("daily_listening", **RANGE, user="u1")

    assert frame["date"].tolist() == [pd.Timestamp("2026-03-01"), pd.Timestamp("2026-03-02")]
    assert str(frame["date"].dtype) == "datetime64[ns]"
    assert frame["plays"].tolist() == [4, 2] and str(frame["plays"].dtype) == "Int64"
    assert frame["distinct_artists"].isna().tolist() == [False, True]
    assert frame["minutes"].tolist() == [12.5, 3.0]
    (execution,) = _executions(athena)
    assert execution["QueryExecutionContext"] == {"Database": DATABASE}
    expected_sql = prepare("daily_listening", {**RANGE, "user": "u1"}, "athena").sql
    assert execution["Query"].endswith(expected_sql)
    assert execution["ExecutionParameters"] == ["'2026-03-01'", "'2026-03-04'", "'u1'", "'u1'"]


def test_athena_bad_parameters_start_nothing(athena: Any, athena_lake: Lake) -> None:
    with pytest.raises(ValueError, match=r"^limit: must be between 1 and 1000$"):
        athena_lake.query("top_artists", **RANGE, limit=0)
    assert _executions(athena) == []


def test_athena_table_filters_on_the_partition_column(athena: Any, athena_lake: Lake) -> None:
    seed(
        [(c.name, {"string": "varchar"}.get(c.type, c.type))
         for c in TABLES["plays"].all_columns],
        [["u1", "2026-03-02 00:10:00.000", "T1", "playlist", "spotify:playlist:PL1",
          *[None] * EXPORT_COLUMNS, "2026-03-02"],
         ["u1", "2026-03-02 12:00:00.000", None, None, None, *[None] * EXPORT_COLUMNS,
          "2026-03-02"]],
    )  # fmt: skip
    frame = athena_lake.table("plays", start="2026-03-02", end="2026-03-03", user="u1")

    (execution,) = _executions(athena)
    query = " ".join(execution["Query"].split())
    assert 'FROM "plays" WHERE "played_date" BETWEEN CAST(? AS DATE) AND CAST(? AS DATE) AND ' \
        "user_id = ?" in query  # fmt: skip
    assert execution["ExecutionParameters"] == ["'2026-03-02'", "'2026-03-03'", "'u1'"]
    assert execution["WorkGroup"] == WORKGROUP
    assert execution["QueryExecutionContext"] == {"Database": DATABASE}
    assert "u1" not in execution["Query"]

    assert list(frame.columns) == [c.name for c in TABLES["plays"].all_columns]
    assert frame["played_at"].tolist() == [
        pd.Timestamp("2026-03-02 00:10", tz="UTC"), pd.Timestamp("2026-03-02 12:00", tz="UTC"),
    ]  # fmt: skip
    assert str(frame["played_at"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["played_date"].dtype) == "datetime64[ns]"
    assert frame["track_id"].isna().tolist() == [False, True]


def test_athena_table_lists_arrive_as_json(athena: Any, athena_lake: Lake) -> None:
    seed(
        [("artist_id", "varchar"), ("name", "varchar"), ("genres", "json"),
         ("snapshot_date", "date")],
        [["A1", "Aurora", '["pop","synth, wave"]', "2026-03-01"],
         ["A3", "Cleo", "[]", "2026-03-01"],
         ["A2", "Boris", None, "2026-03-01"]],
    )  # fmt: skip
    frame = athena_lake.table("artists", start="2026-03-01", end="2026-03-01")
    assert frame["genres"].tolist() == [["pop", "synth, wave"], [], None]
    (execution,) = _executions(athena)
    assert 'CAST("genres" AS JSON) AS "genres"' in execution["Query"]
    assert execution["ExecutionParameters"] == ["'2026-03-01'", "'2026-03-01'"]


def test_open_lake_with_a_stage_uses_its_athena(monkeypatch: pytest.MonkeyPatch) -> None:
    deployed = stage_config("dev", load_config())
    with mock_aws():
        athena = boto3.client("athena", region_name="us-east-1")
        athena.create_work_group(Name=deployed.athena_workgroup)
        seed([("hour", "integer"), ("plays", "bigint"), ("minutes", "double")],
             [["0", "1", "2.5"], ["1", "0", "0.0"]])  # fmt: skip
        lake = spotify_etl.open_lake(stage="dev")
        frame = lake.query("listening_clock", **RANGE, tz="Europe/Berlin")
        ids = athena.list_query_executions(WorkGroup=deployed.athena_workgroup)
        (execution_id,) = ids["QueryExecutionIds"]
        execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert execution["QueryExecutionContext"] == {"Database": deployed.glue_database}
    assert "'Europe/Berlin'" in execution["Query"]
    assert frame["hour"].tolist() == [0, 1] and str(frame["hour"].dtype) == "Int64"


class RecordingEngine:
    """An engine that keeps every answer it gives (to see what the API would have answered)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.answers: list[dict[str, Any]] = []

    def run(self, name: str, params: Any) -> dict[str, Any]:
        return self._keep(self.engine.run(name, params))

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        return self._keep(self.engine.get_execution(execution_id))

    def _keep(self, answer: dict[str, Any]) -> dict[str, Any]:
        self.answers.append(answer)
        return answer


def test_a_slow_athena_query_is_followed_to_its_rows(athena: Any) -> None:
    """Past the API's wait the engine answers 202; the notebook follows the execution."""
    from moto.moto_api import state_manager

    from chalicelib.queries.athena_engine import AthenaEngine
    from spotify_etl.notebook import AthenaTables

    engine = RecordingEngine(
        AthenaEngine(athena, workgroup=WORKGROUP, database=DATABASE, wait_seconds=0)
    )
    lake = Lake(engine, AthenaTables(athena, workgroup=WORKGROUP, database=DATABASE), where="t")
    seed([("genre", "varchar"), ("plays", "bigint"), ("share", "double")], [["pop", "3", "0.75"]])
    state_manager.set_transition(
        model_name="athena::execution", transition={"progression": "manual", "times": 3}
    )
    try:
        frame = lake.query("genres", **RANGE)
    finally:
        state_manager.unset_transition("athena::execution")
    assert frame.to_dict("records") == [{"genre": "pop", "plays": 3, "share": 0.75}]
    # The API would have answered 202 at first; the notebook followed the same execution.
    first, *_, last = engine.answers
    assert "rows" not in first and "rows" in last
    assert {a["execution_id"] for a in engine.answers} == {first["execution_id"]}


def test_pandas_stays_out_of_the_app_and_the_cli() -> None:
    """The Lambda functions import `app`; the CLI imports `spotify_etl`: neither loads pandas
    until a notebook opens a lake."""
    code = (
        "import sys, app, spotify_etl, spotify_etl.cli\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
        "spotify_etl.open_lake\n"
        "assert 'pandas' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
