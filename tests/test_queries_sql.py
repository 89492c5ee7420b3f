"""The SQL sources: Athena dialect, portable to DuckDB, one source each, declared parameters."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from chalicelib.queries import get_query, list_queries, view_definitions
from chalicelib.queries.catalog import view_sources
from chalicelib.queries.errors import NonPortableSQLError
from chalicelib.queries.prepare import INLINE_TYPES
from chalicelib.queries.translate import (
    ENGINE_DIALECTS,
    check_portable,
    placeholder_names,
    render,
)
from chalicelib.tables import LATEST_VIEWS

QUERY_NAMES = [q["name"] for q in list_queries()]
SOURCES = {
    **{f"query {n}": get_query(n).sql for n in QUERY_NAMES},
    **{f"view {n}": sql for n, sql in view_sources().items()},
}


@pytest.mark.parametrize("label", sorted(SOURCES))
def test_every_source_parses_as_athena_and_is_portable(label: str) -> None:
    tree = sqlglot.parse_one(SOURCES[label], read="athena")
    assert isinstance(tree, exp.Query)
    assert check_portable(tree) == []


@pytest.mark.parametrize(
    ("snippet", "problem"),
    [
        ("SELECT hour(played_at AT TIME ZONE 'Europe/Berlin') FROM plays", "AT TIME ZONE"),
        ("SELECT at_timezone(played_at, 'Europe/Berlin') FROM plays", "at_timezone"),
        ("SELECT format_datetime(played_at, 'HH') FROM plays", "format_datetime"),
        ("SELECT date_diff('day', played_at, now()) FROM plays", "date_diff"),
        ("SELECT sum(duration_ms) / 60000 FROM tracks", "division without a DOUBLE"),
        # decimal division keeps the operands' scale on Athena: 100000/60000.0 = 1.7 there
        ("SELECT sum(duration_ms) / 60000.0 FROM tracks", "division without a DOUBLE"),
        ("SELECT * FROM plays WHERE user_id = ?", "anonymous ? placeholder"),
    ],
)
def test_the_walk_refuses_constructs_that_differ_between_engines(
    snippet: str, problem: str
) -> None:
    problems = check_portable(sqlglot.parse_one(snippet, read="athena"))
    assert any(problem in p for p in problems), problems
    with pytest.raises(NonPortableSQLError):
        render(snippet, "duckdb")


def test_the_walk_accepts_a_double_division() -> None:
    tree = sqlglot.parse_one("SELECT CAST(sum(d) AS DOUBLE) / 60000.0 FROM t", read="athena")
    assert check_portable(tree) == []


@pytest.mark.parametrize("name", QUERY_NAMES)
def test_declared_parameters_are_exactly_the_placeholders(name: str) -> None:
    query = get_query(name)
    used = placeholder_names(sqlglot.parse_one(query.sql, read="athena"))
    assert used == {p.name for p in query.parameters}


@pytest.mark.parametrize("name", QUERY_NAMES)
@pytest.mark.parametrize("dialect", ENGINE_DIALECTS)
def test_unbindable_placeholders_are_only_inline_safe_types(name: str, dialect: str) -> None:
    """Outside WHERE, only an int in range or a name from a fixed list may enter the text."""
    query = get_query(name)
    tree = sqlglot.parse_one(query.sql, read="athena")
    outside_where = {
        p.name for p in tree.find_all(exp.Placeholder) if p.find_ancestor(exp.Where) is None
    }
    types = {p.name: p.type for p in query.parameters}
    assert {types[n] for n in outside_where} <= INLINE_TYPES
    inline = {n: 1 if types[n] == "int" else "UTC" for n in outside_where}
    statement = render(query.sql, dialect, inline)
    assert statement.sql.count("?") == len(statement.parameters)
    assert set(statement.parameters) <= {n for n in types if n not in outside_where}
    # The text each engine gets parses in that engine's dialect.
    sqlglot.parse_one(statement.sql, read=dialect)


def test_a_text_parameter_outside_where_is_refused() -> None:
    with pytest.raises(NonPortableSQLError, match="outside WHERE"):
        render("SELECT * FROM plays LIMIT :user", "athena")


def test_placeholders_become_positional_in_text_order() -> None:
    source = (
        "SELECT ':not_a_param' AS label FROM plays "
        "WHERE played_date = CAST(:date AS DATE) AND (:user IS NULL OR user_id = :user)"
    )
    for dialect in ENGINE_DIALECTS:
        statement = render(source, dialect)
        assert statement.parameters == ("date", "user", "user")
        assert "':not_a_param'" in statement.sql  # a string literal is left alone
        assert statement.sql.count("?") == 3


def test_hour_in_zone_is_rewritten_per_engine() -> None:
    source = "SELECT hour_in_zone(played_at, :tz) AS h FROM plays"
    athena = render(source, "athena", {"tz": "Asia/Kolkata"}).sql
    duck = render(source, "duckdb", {"tz": "Asia/Kolkata"}).sql
    assert "HOUR(AT_TIMEZONE(played_at, 'Asia/Kolkata'))" in athena
    assert "HOUR(TIMEZONE('Asia/Kolkata', CAST(played_at AS TIMESTAMPTZ)))" in duck
    assert "hour_in_zone" not in (athena + duck).lower()


def test_duckdb_rewrite_means_what_athena_means() -> None:
    """Athena: hour(UTC timestamp AT TIME ZONE z) is the hour on z's clock. Check the DuckDB
    spelling gives that for a half-hour zone, a zone west of UTC, and a DST change."""
    sql = render("SELECT hour_in_zone(ts, :tz) AS h FROM t", "duckdb", {"tz": "TZ"}).sql
    cases = [
        ("2026-03-01 23:30:00", "Asia/Kolkata", 5),
        ("2026-03-01 02:30:00", "America/New_York", 21),
        ("2026-03-08 07:30:00", "America/New_York", 3),  # EDT from 07:00 UTC that day
        ("2026-03-01 23:30:00", "UTC", 23),
    ]
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        for utc, zone, hour in cases:
            table = f"SELECT TIMESTAMPTZ '{utc}+00' AS ts"
            query = sql.replace("'TZ'", f"'{zone}'").replace("FROM t", f"FROM ({table})")
            assert connection.execute(query).fetchone() == (hour,), (utc, zone)


def test_weekday_in_zone_is_rewritten_per_engine() -> None:
    source = "SELECT weekday_in_zone(played_at, :tz) AS w FROM plays"
    athena = render(source, "athena", {"tz": "Asia/Kolkata"}).sql
    duck = render(source, "duckdb", {"tz": "Asia/Kolkata"}).sql
    # ISO weekdays on both (1 = Monday): Athena's day_of_week, DuckDB's isodow — not DuckDB's
    # dayofweek, which counts from Sunday = 0.
    assert "DAY_OF_WEEK(AT_TIMEZONE(played_at, 'Asia/Kolkata'))" in athena
    assert "ISODOW(TIMEZONE('Asia/Kolkata', CAST(played_at AS TIMESTAMPTZ)))" in duck
    assert "weekday_in_zone" not in (athena + duck).lower()
    # The Athena text reads back as the same ISO weekday function.
    assert sqlglot.parse_one(athena, read="athena").find(exp.DayOfWeekIso) is not None


@pytest.mark.parametrize("macro", ["hour_in_zone", "weekday_in_zone"])
def test_a_zone_macro_needs_a_validated_zone_name(macro: str) -> None:
    with pytest.raises(NonPortableSQLError, match=macro):
        render(f"SELECT {macro}(played_at, user_id) FROM plays", "duckdb")


def test_duckdb_weekday_rewrite_means_what_athena_means() -> None:
    """Athena: day_of_week(UTC timestamp AT TIME ZONE z) is the ISO weekday on z's clock. Check
    the DuckDB spelling against Python's zoneinfo: zones ahead of and behind UTC by a fraction
    of an hour, a DST change, and both ends of the week."""
    sql = render(
        "SELECT weekday_in_zone(ts, :tz) AS w, hour_in_zone(ts, :tz) AS h FROM t",
        "duckdb",
        {"tz": "TZ"},
    ).sql
    cases = [
        ("2026-03-01 23:30:00", "Asia/Kolkata"),  # Sunday in UTC, Monday 05:00 there
        ("2026-03-31 18:20:00", "Asia/Kathmandu"),  # +05:45: Wednesday 00:05
        ("2026-03-02 02:30:00", "America/New_York"),  # Monday in UTC, Sunday 21:30 there
        ("2026-03-08 06:30:00", "America/New_York"),  # Sunday 01:30 EST
        ("2026-03-08 07:30:00", "America/New_York"),  # Sunday 03:30 EDT
        ("2026-03-29 00:59:00", "Europe/Berlin"),  # Sunday 01:59 CET
        ("2026-03-29 01:00:00", "Europe/Berlin"),  # Sunday 03:00 CEST
        ("2026-03-07 11:00:00", "Pacific/Chatham"),  # +13:45: Sunday 00:45
        ("2026-03-02 10:00:00", "Pacific/Pago_Pago"),  # -11: Sunday 23:00
        ("2026-03-01 12:00:00", "UTC"),  # Sunday: 7
        ("2026-03-02 00:00:00", "UTC"),  # Monday: 1
    ]
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        for utc, zone in cases:
            local = datetime.fromisoformat(utc).replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
            table = f"SELECT TIMESTAMPTZ '{utc}+00' AS ts"
            query = sql.replace("'TZ'", f"'{zone}'").replace("FROM t", f"FROM ({table})")
            assert connection.execute(query).fetchone() == (local.isoweekday(), local.hour), (
                utc,
                zone,
            )


@pytest.mark.parametrize("dialect", ENGINE_DIALECTS)
def test_view_definitions(dialect: str) -> None:
    definitions = view_definitions(dialect)
    assert sorted(definitions) == sorted(LATEST_VIEWS)
    for name, sql in definitions.items():
        assert sql.startswith(f"CREATE OR REPLACE VIEW {name} AS\n")
        assert "?" not in sql
        created = sqlglot.parse_one(sql, read=dialect)
        assert isinstance(created, exp.Create)


def test_one_source_per_query() -> None:
    """No hand-kept second copy: every .sql file under chalicelib/queries is a catalog entry."""
    from importlib import resources

    files = [
        entry.name
        for package in ("chalicelib.queries.named", "chalicelib.queries.views")
        for entry in resources.files(package).iterdir()
        if entry.name.endswith(".sql")
    ]
    assert sorted(f.removesuffix(".sql") for f in files) == sorted([*QUERY_NAMES, *view_sources()])
    assert all(re.fullmatch(r"[a-z_]+\.sql", f) for f in files)


def test_the_counting_macros_expand_to_the_contracts_rule() -> None:
    source = (
        "SELECT count(*) AS n FROM plays AS p "
        "WHERE is_music(p.item_type) AND is_stream(p.ms_played) OR NOT is_stream(p.ms_played)"
    )
    for dialect in ENGINE_DIALECTS:
        sql = " ".join(render(source, dialect).sql.split())
        assert "COALESCE(p.item_type, 'track') IN ('track', 'unknown')" in sql
        # Parenthesised: each macro binds as one term next to AND, OR and NOT.
        assert "NOT ( p.ms_played IS NULL OR p.ms_played >= 30000 )" in sql
        assert "is_music" not in sql.lower() and "is_stream" not in sql.lower()
    with pytest.raises(NonPortableSQLError, match="one argument"):
        render("SELECT 1 FROM plays WHERE is_stream(ms_played, 1)", "duckdb")


def test_the_counting_macros_mean_the_contracts_rule() -> None:
    """Which (item_type, ms_played) pairs count, on DuckDB: music (null = an old API row) that
    Spotify counts as a stream (ms_played null or at least 30,000)."""
    sql = render(
        "SELECT item_type, ms_played FROM t WHERE is_music(item_type) AND is_stream(ms_played)",
        "duckdb",
    ).sql
    cases = [
        ("track", None), ("track", 30000), ("track", 29999), ("track", 0), (None, None),
        ("unknown", 45000), ("episode", 60000), ("audiobook", None), (None, 10),
    ]  # fmt: skip
    values = ", ".join(
        f"({'NULL' if i is None else repr(i)}, {'NULL' if m is None else m})" for i, m in cases
    )
    table = f"(SELECT * FROM (VALUES {values}) AS v (item_type, ms_played))"
    with duckdb.connect() as connection:
        counted = connection.execute(sql.replace("FROM t", f"FROM {table} AS t")).fetchall()
    assert sorted(counted, key=str) == sorted(
        [("track", None), ("track", 30000), (None, None), ("unknown", 45000)], key=str
    )


@pytest.mark.parametrize(
    "name",
    [q for q in QUERY_NAMES if q not in ("playlist_changes", "top_items_movement")],
)
def test_every_play_query_applies_the_counting_rule(name: str) -> None:
    """Contract §6 in every query over plays: music plays that are streams (skips: every music
    play with a known time; top_shows: episodes and audiobooks that are streams)."""
    sql = get_query(name).sql
    if name == "skips":
        assert "is_music(p.item_type) AND p.ms_played IS NOT NULL" in sql
    elif name == "top_shows":
        assert "p.item_type IN ('episode', 'audiobook') AND is_stream(p.ms_played)" in sql
    else:
        assert "is_music(p.item_type) AND is_stream(p.ms_played)" in sql
    assert "30000" not in sql  # the threshold lives in translate.py only
