"""Parameter validation: every rule of contract §6 refuses bad input before any SQL exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.queries import QueryParameterError, UnknownQuery, get_query, list_queries
from chalicelib.queries.duckdb_engine import DuckDBEngine
from chalicelib.queries.parameters import parse_declaration, validate
from chalicelib.queries.prepare import prepare

RANGE = {"start": "2026-03-01", "end": "2026-03-04"}
MOVEMENT = {"item_type": "track", "time_range": "long_term", "date": "2026-03-04", "user": "u1"}


def values(name: str, params: dict[str, Any]) -> dict[str, Any]:
    return validate(get_query(name).parameters, params)


def test_defaults_and_absent_optional_values() -> None:
    assert values("top_artists", RANGE) == {**RANGE, "user": None, "limit": 10}
    assert values("listening_clock", RANGE)["tz"] == "UTC"
    assert values("top_tracks", {**RANGE, "limit": "1000", "user": "a.b-c_9"}) == {
        **RANGE,
        "user": "a.b-c_9",
        "limit": 1000,
    }
    assert values("top_tracks", {**RANGE, "limit": 5})["limit"] == 5  # Python callers


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        # dates
        ("daily_listening", {**RANGE, "start": "2026-3-1"}, "start: expected a date"),
        ("daily_listening", {**RANGE, "end": "2026-02-30"}, "end: expected a date"),
        ("daily_listening", {**RANGE, "end": "yesterday"}, "end: expected a date"),
        ("daily_listening", {**RANGE, "start": "2026-03-01T00:00"}, "start: expected a date"),
        ("daily_listening", {"start": "2026-03-05", "end": "2026-03-04"}, "is after end"),
        # required ones
        ("daily_listening", {"start": "2026-03-01"}, "end: required"),
        ("playlist_changes", {"playlist": "PL1", "date": "2026-03-04"}, "user: required"),
        # limit 1-1000
        ("top_artists", {**RANGE, "limit": "0"}, "limit: must be between 1 and 1000"),
        ("top_artists", {**RANGE, "limit": "1001"}, "limit: must be between 1 and 1000"),
        ("top_artists", {**RANGE, "limit": "-5"}, "limit: must be between 1 and 1000"),
        ("top_artists", {**RANGE, "limit": "ten"}, "limit: expected an integer"),
        ("top_artists", {**RANGE, "limit": "1e3"}, "limit: expected an integer"),
        ("top_artists", {**RANGE, "limit": "99999999999999999999"}, "expected an integer"),
        # ids
        ("top_artists", {**RANGE, "user": "u1' OR '1'='1"}, "user: expected an id"),
        ("top_artists", {**RANGE, "user": "x" * 129}, "user: expected an id"),
        ("top_artists", {**RANGE, "user": ""}, "user: expected an id"),
        ("playlist_changes", {"playlist": "a/b", "date": "2026-03-04", "user": "u1"}, "playlist"),
        # enums
        ("top_items_movement", {**MOVEMENT, "item_type": "album"}, "item_type: expected one of"),
        ("top_items_movement", {**MOVEMENT, "time_range": "forever"}, "time_range: expected"),
        ("top_items_movement", {**MOVEMENT, "item_type": "Artist"}, "item_type: expected"),
        # time zones: the IANA list, exactly
        ("listening_clock", {**RANGE, "tz": "Mars/Olympus"}, "tz: expected an IANA time zone"),
        ("listening_clock", {**RANGE, "tz": "utc'; DROP TABLE plays; --"}, "tz: expected"),
        ("listening_clock", {**RANGE, "tz": "+05:30"}, "tz: expected an IANA time zone"),
        # unknown parameters and non-text values
        ("daily_listening", {**RANGE, "limit": "5"}, "unknown parameter(s): limit"),
        ("genres", {**RANGE, "order": "x", "Start": "y"}, "unknown parameter(s): Start, order"),
        ("genres", {**RANGE, "limit": ["5"]}, "limit: expected text"),
    ],
)
def test_each_rule_refuses_bad_input(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryParameterError) as raised:
        prepare(name, params, "duckdb")
    assert message in raised.value.message
    assert str(raised.value) == raised.value.message


def test_same_day_range_and_leap_day_are_accepted() -> None:
    assert values("genres", {"start": "2028-02-29", "end": "2028-02-29"})["start"] == "2028-02-29"


def test_unknown_query() -> None:
    with pytest.raises(UnknownQuery):
        get_query("drop_everything")
    with pytest.raises(UnknownQuery):
        get_query("../named/top_artists")


def test_refused_values_never_reach_an_engine(tmp_path: Path) -> None:
    # The engine raises before it opens a session: nothing is written into the lake directory.
    engine = DuckDBEngine(tmp_path / "no-such-lake")
    with pytest.raises(QueryParameterError):
        engine.run("top_artists", {**RANGE, "user": "x'); DROP VIEW plays; --"})
    assert not (tmp_path / "no-such-lake").exists()


def test_accepted_values_are_bound_not_written_into_sql() -> None:
    prepared = prepare("top_artists", {**RANGE, "user": "u1", "limit": "7"}, "duckdb")
    assert "u1" not in prepared.sql
    assert "2026-03-01" not in prepared.sql
    assert prepared.arguments == ("2026-03-01", "2026-03-04", "u1", "u1")
    assert prepared.sql.count("?") == 4
    # LIMIT cannot be bound on Athena: only the validated integer is written into the SQL.
    assert prepared.sql.rstrip().endswith("LIMIT 7")


def test_only_a_listed_zone_name_is_written_into_sql() -> None:
    prepared = prepare("listening_clock", {**RANGE, "tz": "Asia/Kolkata"}, "duckdb")
    assert "'Asia/Kolkata'" in prepared.sql
    assert "Asia/Kolkata" not in prepared.arguments


def test_list_queries_describes_parameters() -> None:
    catalog = {q["name"]: q for q in list_queries()}
    assert sorted(catalog) == [
        "coverage",
        "daily_listening",
        "discoveries",
        "genres",
        "listening_clock",
        "playlist_changes",
        "skips",
        "top_albums",
        "top_artists",
        "top_items_movement",
        "top_shows",
        "top_tracks",
        "weekday_hour",
    ]
    # Contract §6: the history queries' parameters, as GET /queries lists them.
    declared = {
        name: [(p["name"], p["type"], p["required"], p["default"]) for p in q["parameters"]]
        for name, q in catalog.items()
    }
    range_user = [("start", "date", True, None), ("end", "date", True, None),
                  ("user", "string", False, None)]  # fmt: skip
    assert declared["top_shows"] == [*range_user, ("limit", "int", False, "10")]
    assert declared["skips"] == [*range_user, ("limit", "int", False, "10")]
    assert declared["coverage"] == range_user
    assert catalog["top_artists"]["parameters"] == [
        {
            "name": "start",
            "type": "date",
            "required": True,
            "default": None,
            "description": "First played_date (UTC), inclusive",
        },
        {
            "name": "end",
            "type": "date",
            "required": True,
            "default": None,
            "description": "Last played_date (UTC), inclusive",
        },
        {
            "name": "user",
            "type": "string",
            "required": False,
            "default": None,
            "description": "Only this user's plays; all users when absent",
        },
        {
            "name": "limit",
            "type": "int",
            "required": False,
            "default": "10",
            "description": "Number of rows to return",
            "minimum": 1,
            "maximum": 1000,
        },
    ]
    movement = {p["name"]: p for p in catalog["top_items_movement"]["parameters"]}
    assert movement["item_type"]["choices"] == ["artist", "track"]
    assert movement["time_range"]["choices"] == ["short_term", "medium_term", "long_term"]
    assert all(p["required"] for p in movement.values())
    assert all(q["description"] for q in catalog.values())


def test_the_new_queries_declare_the_parameters_of_contract_section_6() -> None:
    catalog = {q["name"]: q for q in list_queries()}

    def declared(name: str) -> list[tuple[str, str, bool, str | None]]:
        return [
            (p["name"], p["type"], p["required"], p["default"]) for p in catalog[name]["parameters"]
        ]

    range_ = [("start", "date", True, None), ("end", "date", True, None),
              ("user", "string", False, None)]  # fmt: skip
    assert declared("weekday_hour") == [*range_, ("tz", "tz", False, "UTC")]
    assert declared("top_albums") == [*range_, ("limit", "int", False, "10")]
    assert declared("discoveries") == range_
    assert declared("top_albums") == declared("top_tracks")
    assert declared("weekday_hour") == declared("listening_clock")
    limit = next(p for p in catalog["top_albums"]["parameters"] if p["name"] == "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, 1000)
    # The same validation as the older queries: a bad zone or limit never reaches SQL.
    with pytest.raises(QueryParameterError, match="tz: expected an IANA time zone"):
        values("weekday_hour", {**RANGE, "tz": "+05:30"})
    with pytest.raises(QueryParameterError, match="limit: must be between 1 and 1000"):
        values("top_albums", {**RANGE, "limit": "1001"})
    with pytest.raises(QueryParameterError, match="unknown parameter"):
        values("discoveries", {**RANGE, "limit": "5"})
    with pytest.raises(QueryParameterError, match="is after end"):
        values("discoveries", {"start": "2026-03-04", "end": "2026-03-01"})


@pytest.mark.parametrize(
    "line",
    [
        "@param limit int(1..1000)=0 below its own minimum",
        "@param kind enum required no choices",
        "@param when datetime required an unknown type",
        "@param tz tz=Nowhere/City a default outside the list",
        "@param nodescription date",
    ],
)
def test_malformed_declarations_are_refused(line: str) -> None:
    with pytest.raises((ValueError, QueryParameterError)):
        parse_declaration(line)


@pytest.mark.parametrize("user_id", ["first.last+spotify@example.com", "a-b_c.9", "ü1", "x" * 128])
def test_user_parameter_accepts_every_id_the_api_accepts(user_id: str) -> None:
    """One shared pattern: an id `POST /runs` and `DELETE /users/{id}` accept is a valid
    `user` for the queries too (before, `+` and `@` were refused here only)."""
    from chalicelib import api

    api._check_user_id(user_id)  # raises on refusal
    assert values("top_artists", {**RANGE, "user": user_id})["user"] == user_id
    sql = prepare("top_artists", {**RANGE, "user": user_id}, "duckdb")
    assert sql is not None


@pytest.mark.parametrize("user_id", ["u1'", "a b", "u1\n", "a/b", "x" * 129, 'u"1', "u\\1"])
def test_api_and_queries_refuse_the_same_ids(user_id: str) -> None:
    from chalice import BadRequestError

    from chalicelib import api

    with pytest.raises(BadRequestError):
        api._check_user_id(user_id)
    with pytest.raises(QueryParameterError):
        values("top_artists", {**RANGE, "user": user_id})
