"""The Athena engine against moto.

moto never runs SQL: each test seeds `query_results_queue` (first in, first out, consumed when
results are first read) with what Athena would answer, then checks the request the engine made
(workgroup, database, execution parameters, SQL translated from the one source) and how the
answer was converted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlglot
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager

from chalicelib.config import Config
from chalicelib.queries import (
    QueryFailedError,
    QueryParameterError,
    UnknownExecution,
    is_finished,
    open_engine,
)
from chalicelib.queries.athena_engine import AthenaEngine
from chalicelib.queries.catalog import get_query, list_queries
from chalicelib.queries.duckdb_engine import DuckDBEngine
from chalicelib.queries.prepare import prepare

WORKGROUP = "spotify-etl-test"
DATABASE = "spotify_etl_test"
RANGE = {"start": "2026-03-01", "end": "2026-03-04"}


@pytest.fixture
def athena() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("athena", region_name="us-east-1")
        client.create_work_group(Name=WORKGROUP)
        yield client


@pytest.fixture
def backend(athena: Any) -> Any:
    return athena_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]


@pytest.fixture
def slow_athena() -> Iterator[None]:
    """Executions stay QUEUED/RUNNING for a few status calls, as a real query would."""
    state_manager.set_transition(
        model_name="athena::execution", transition={"progression": "manual", "times": 3}
    )
    yield
    state_manager.unset_transition("athena::execution")


def engine_for(client: Any, **options: Any) -> AthenaEngine:
    return AthenaEngine(client, workgroup=WORKGROUP, database=DATABASE, **options)


def seed(backend: Any, columns: list[tuple[str, str]], data: list[list[str | None]]) -> None:
    """Queue one result set as GetQueryResults returns it: a header row, then text cells."""
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    body = [
        {"Data": [{} if cell is None else {"VarCharValue": cell} for cell in row]} for row in data
    ]
    info = [
        {"Name": name, "Label": name, "Type": type_, "CatalogName": "hive", "Nullable": "UNKNOWN"}
        for name, type_ in columns
    ]
    backend.query_results_queue.append(QueryResults(rows=[header, *body], column_info=info))


def test_run_sends_translated_sql_with_bound_parameters(athena: Any, backend: Any) -> None:
    seed(
        backend,
        [("artist_id", "varchar"), ("artist_name", "varchar"), ("plays", "bigint"),
         ("minutes", "double")],
        [["A1", "Aurora", "5", "18.0"], ["A9", None, "2", "13.09"]],
    )  # fmt: skip
    answer = engine_for(athena).run("top_artists", {**RANGE, "user": "u1", "limit": "2"})

    assert answer == {
        "query": "top_artists",
        "columns": ["artist_id", "artist_name", "plays", "minutes"],
        "rows": [
            {"artist_id": "A1", "artist_name": "Aurora", "plays": 5, "minutes": 18.0},
            {"artist_id": "A9", "artist_name": None, "plays": 2, "minutes": 13.09},
        ],
        "execution_id": answer["execution_id"],
        "engine": "athena",
    }
    assert is_finished(answer)
    execution = athena.get_query_execution(QueryExecutionId=answer["execution_id"])[
        "QueryExecution"
    ]
    assert execution["WorkGroup"] == WORKGROUP
    assert execution["QueryExecutionContext"] == {"Database": DATABASE}
    # Athena pastes each parameter into the SQL as literal text: strings carry their quotes.
    assert execution["ExecutionParameters"] == ["'2026-03-01'", "'2026-03-04'", "'u1'", "'u1'"]
    expected_sql = prepare("top_artists", {**RANGE, "user": "u1", "limit": "2"}, "athena").sql
    assert execution["Query"] == f"-- spotify-etl named query: top_artists\n{expected_sql}"
    assert "u1" not in execution["Query"]
    assert execution["Query"].rstrip().endswith("LIMIT 2")


def test_absent_optional_parameter_is_sent_as_null(athena: Any, backend: Any) -> None:
    seed(backend, [("date", "date"), ("plays", "bigint")], [["2026-03-01", "4"]])
    answer = engine_for(athena).run("daily_listening", RANGE)
    assert answer["rows"] == [{"date": "2026-03-01", "plays": 4}]
    execution = athena.get_query_execution(QueryExecutionId=answer["execution_id"])
    params = execution["QueryExecution"]["ExecutionParameters"]
    assert params == ["'2026-03-01'", "'2026-03-04'", "NULL", "NULL"]


def test_listening_clock_writes_the_zone_for_athena(athena: Any, backend: Any) -> None:
    seed(backend, [("hour", "integer"), ("plays", "bigint"), ("minutes", "double")], [])
    answer = engine_for(athena).run("listening_clock", {**RANGE, "tz": "Asia/Kolkata"})
    assert answer["rows"] == []
    query = athena.get_query_execution(QueryExecutionId=answer["execution_id"])["QueryExecution"][
        "Query"
    ]
    assert "HOUR(AT_TIMEZONE(played_at, 'Asia/Kolkata'))" in query


def test_weekday_hour_writes_the_zone_for_athena(athena: Any, backend: Any) -> None:
    seed(
        backend,
        [("weekday", "integer"), ("hour", "integer"), ("plays", "bigint"), ("minutes", "double")],
        [["1", "0", "2", "7.5"]],
    )
    answer = engine_for(athena).run("weekday_hour", {**RANGE, "user": "u1", "tz": "Asia/Kolkata"})
    assert answer["rows"] == [{"weekday": 1, "hour": 0, "plays": 2, "minutes": 7.5}]
    execution = athena.get_query_execution(QueryExecutionId=answer["execution_id"])[
        "QueryExecution"
    ]
    assert "DAY_OF_WEEK(AT_TIMEZONE(played_at, 'Asia/Kolkata'))" in execution["Query"]
    assert "HOUR(AT_TIMEZONE(played_at, 'Asia/Kolkata'))" in execution["Query"]
    assert execution["ExecutionParameters"] == ["'2026-03-01'", "'2026-03-04'", "'u1'", "'u1'"]


@pytest.mark.parametrize(
    ("name", "params", "bound"),
    [
        ("top_albums", {**RANGE, "limit": "3"}, ["'2026-03-01'", "'2026-03-04'", "NULL", "NULL"]),
        # discoveries reads the user's whole history (user first), then the range.
        (
            "discoveries",
            {**RANGE, "user": "u2"},
            ["'u2'", "'u2'", "'2026-03-01'", "'2026-03-04'", "'2026-03-01'", "'2026-03-04'"],
        ),
        ("top_shows", {**RANGE, "limit": "3"}, ["'2026-03-01'", "'2026-03-04'", "NULL", "NULL"]),
        (
            "skips",
            {**RANGE, "user": "u1", "limit": "3"},
            ["'2026-03-01'", "'2026-03-04'", "'u1'", "'u1'"],
        ),
        # coverage: its plays, then the dates of the range (twice), then the gaps' user.
        (
            "coverage",
            {**RANGE, "user": "u1"},
            [
                "'2026-03-01'",
                "'2026-03-04'",
                "'u1'",
                "'u1'",
                "'2026-03-04'",
                "'2026-03-01'",
                "'2026-03-01'",
                "'2026-03-04'",
                "'u1'",
                "'u1'",
            ],
        ),
    ],
)
def test_new_queries_bind_their_values_for_athena(
    athena: Any, backend: Any, name: str, params: dict[str, str], bound: list[str]
) -> None:
    seed(backend, [("plays", "bigint")], [])
    answer = engine_for(athena).run(name, params)
    execution = athena.get_query_execution(QueryExecutionId=answer["execution_id"])[
        "QueryExecution"
    ]
    assert execution["ExecutionParameters"] == bound
    assert execution["Query"] == (
        f"-- spotify-etl named query: {name}\n{prepare(name, params, 'athena').sql}"
    )
    if name in ("top_albums", "top_shows", "skips"):
        assert execution["Query"].rstrip().endswith("LIMIT 3")
    # Athena binds only in WHERE: no value is written into the text but the limit.
    assert "2026-03" not in execution["Query"]
    assert "'u1'" not in execution["Query"] and "'u2'" not in execution["Query"]


@pytest.mark.parametrize("name", [q["name"] for q in list_queries()])
def test_every_query_translates_for_athena_without_duckdb_spellings(name: str) -> None:
    """The Athena text of every query: macros expanded to Athena's functions, none of DuckDB's
    (EPOCH, GENERATE_SERIES, TIMEZONE(...), INTERVAL arithmetic) left in it."""
    samples = {"start": "2026-03-01", "end": "2026-03-04", "date": "2026-03-04", "user": "u1",
               "playlist": "PL1", "item_type": "artist", "time_range": "short_term"}  # fmt: skip
    declared = [p.name for p in get_query(name).parameters]
    sql = prepare(name, {k: v for k, v in samples.items() if k in declared}, "athena").sql
    sqlglot.parse_one(sql, read="athena")
    upper = sql.upper()
    for macro in ("IS_MUSIC", "IS_STREAM", "HOUR_IN_ZONE", "WEEKDAY_IN_ZONE"):
        assert macro not in upper
    for duckdb_only in ("EPOCH(", "GENERATE_SERIES", " TIMEZONE(", "ISODOW", "INTERVAL ("):
        assert duckdb_only not in upper, duckdb_only
    if name == "coverage":
        assert "TO_UNIXTIME(" in upper and "DATE_ADD('DAY'" in upper
        assert "NOT EXISTS" in upper


def test_values_of_every_type_are_converted(athena: Any, backend: Any) -> None:
    columns = [
        ("i", "integer"),
        ("b", "bigint"),
        ("d", "double"),
        ("m", "decimal"),
        ("f", "boolean"),
        ("day", "date"),
        ("ts", "timestamp"),
        ("s", "varchar"),
    ]
    seed(
        backend,
        columns,
        [
            ["7", "9007199254740993", "0.5455", "4.09", "true", "2026-03-01",
             "2026-03-01 23:30:00.000", "x"],
            [None] * 8,
        ],
    )  # fmt: skip
    answer = engine_for(athena).run("genres", RANGE)
    assert answer["rows"] == [
        {
            "i": 7,
            "b": 9007199254740993,
            "d": 0.5455,
            "m": 4.09,
            "f": True,
            "day": "2026-03-01",
            "ts": "2026-03-01T23:30:00.000Z",
            "s": "x",
        },
        dict.fromkeys([c for c, _ in columns]),
    ]


class PagingAthena:
    """moto returns every row in one page; real GetQueryResults gives at most `MaxResults` a
    page with a NextToken. This wraps the moto-backed client to page as Athena does."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.page_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_query_results(self, **request: Any) -> dict[str, Any]:
        full = self.client.get_query_results(QueryExecutionId=request["QueryExecutionId"])
        start = int(request.get("NextToken", "0"))
        limit = request["MaxResults"]
        every = full["ResultSet"]["Rows"]
        page = {**full, "ResultSet": {**full["ResultSet"], "Rows": every[start : start + limit]}}
        if start + limit < len(every):
            page["NextToken"] = str(start + limit)
        self.page_sizes.append(len(page["ResultSet"]["Rows"]))
        return page


def test_results_are_read_page_by_page(athena: Any, backend: Any) -> None:
    seed(backend, [("rank", "integer"), ("item_id", "varchar")],
         [[str(n), f"T{n}"] for n in range(1, 2501)])  # fmt: skip
    client = PagingAthena(athena)
    params = {"item_type": "track", "time_range": "long_term", "date": "2026-03-04", "user": "u1"}
    answer = engine_for(client).run("top_items_movement", params)
    assert client.page_sizes == [1000, 1000, 501]  # the header row, then 2500 rows
    assert len(answer["rows"]) == 2500
    assert answer["rows"][0] == {"rank": 1, "item_id": "T1"}
    assert answer["rows"][999] == {"rank": 1000, "item_id": "T1000"}  # the first page's last
    assert answer["rows"][-1] == {"rank": 2500, "item_id": "T2500"}


class SteppingClock:
    """Time moves only when the engine sleeps, so waiting is exact and instant."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.usefixtures("slow_athena")
def test_a_slow_query_answers_202_then_its_rows(athena: Any, backend: Any) -> None:
    seed(backend, [("genre", "varchar"), ("plays", "bigint"), ("share", "double")],
         [["pop", "6", "0.5455"]])  # fmt: skip
    clock = SteppingClock()
    engine = engine_for(athena, wait_seconds=1.0, poll_seconds=0.5, clock=clock, sleep=clock.sleep)

    pending = engine.run("genres", RANGE)
    assert pending == {"execution_id": pending["execution_id"], "status": pending["status"]}
    assert pending["status"] in ("queued", "running")
    assert not is_finished(pending)
    assert clock.sleeps == [0.5, 0.5]  # polled until the wait budget was spent, no longer

    answer = engine.get_execution(pending["execution_id"])
    assert answer["query"] == "genres"
    assert answer["rows"] == [{"genre": "pop", "plays": 6, "share": 0.5455}]


@pytest.mark.usefixtures("slow_athena")
def test_a_query_that_finishes_within_the_budget_answers_at_once(athena: Any) -> None:
    clock = SteppingClock()
    engine = engine_for(athena, wait_seconds=5.0, poll_seconds=0.5, clock=clock, sleep=clock.sleep)
    answer = engine.run("daily_listening", RANGE)
    assert answer["rows"] == []  # nothing seeded: moto's empty result
    assert clock.sleeps  # it did wait for the query...
    assert clock.now < 5.0  # ...and answered before the budget ran out


def test_a_cancelled_query_is_an_error(athena: Any) -> None:
    engine = engine_for(athena)
    execution_id = athena.start_query_execution(
        QueryString="-- spotify-etl named query: genres\nSELECT 1", WorkGroup=WORKGROUP
    )["QueryExecutionId"]
    athena.stop_query_execution(QueryExecutionId=execution_id)
    with pytest.raises(QueryFailedError, match="cancelled"):
        engine.get_execution(execution_id)


def test_get_execution_knows_only_its_own_named_queries(athena: Any) -> None:
    engine = engine_for(athena)
    foreign = athena.start_query_execution(QueryString="SELECT 1", WorkGroup=WORKGROUP)
    other_workgroup = athena.start_query_execution(
        QueryString="-- spotify-etl named query: genres\nSELECT 1", WorkGroup="primary"
    )
    for execution_id in (
        foreign["QueryExecutionId"],
        other_workgroup["QueryExecutionId"],
        "../../etc/passwd",
        "",
    ):
        with pytest.raises(UnknownExecution):
            engine.get_execution(execution_id)


def test_bad_parameters_start_nothing(athena: Any) -> None:
    engine = engine_for(athena)
    with pytest.raises(QueryParameterError):
        engine.run("top_artists", {**RANGE, "user": "u1' OR '1'='1"})
    with pytest.raises(QueryParameterError):
        engine.run("top_artists", {**RANGE, "limit": "1; DROP TABLE plays"})
    assert athena.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"] == []


def test_open_engine_follows_the_configuration(athena: Any, tmp_path: Any) -> None:
    deployed = Config(
        lake_uri="s3://lake-bucket",
        query_engine="athena",
        athena_workgroup=WORKGROUP,
        glue_database=DATABASE,
    )
    engine = open_engine(deployed, lambda: athena)
    assert isinstance(engine, AthenaEngine)
    assert (engine.client, engine.workgroup, engine.database) == (athena, WORKGROUP, DATABASE)

    def no_athena() -> Any:
        raise AssertionError("a local engine needs no Athena client")

    local = open_engine(Config(lake_uri=str(tmp_path), query_engine="duckdb"), no_athena)
    assert isinstance(local, DuckDBEngine)
    assert local.lake_dir == tmp_path.resolve()

    with pytest.raises(ValueError, match="local LAKE_URI"):
        open_engine(Config(lake_uri="s3://lake-bucket", query_engine="duckdb"), no_athena)
    with pytest.raises(ValueError, match="unknown QUERY_ENGINE"):
        open_engine(Config(query_engine="sqlite"), no_athena)
