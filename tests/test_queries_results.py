"""The named queries on DuckDB, against rows worked out by hand from tests/query_fixtures.py.

Each expected row says how its numbers follow from the fixture (P1..P7 are u1's plays, Q1..Q5
u2's; minutes per track: T0 2.0, T1 3.0, T2 4.0, T3 1.5, T4 3.5, T5 65432 ms = 1.0905).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from query_fixtures import at, build_lake, write_rows

from chalicelib.queries import UnknownExecution, list_queries
from chalicelib.queries.duckdb_engine import DuckDBEngine

RANGE = {"start": "2026-03-01", "end": "2026-03-04"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> DuckDBEngine:
    return DuckDBEngine(build_lake(tmp_path_factory.mktemp("lake")))


def rows(engine: DuckDBEngine, name: str, **params: str) -> list[tuple[Any, ...]]:
    answer = engine.run(name, params)
    return [tuple(row[c] for c in answer["columns"]) for row in answer["rows"]]


def test_answer_shape_is_json_ready(engine: DuckDBEngine) -> None:
    answer = engine.run("daily_listening", {**RANGE, "user": "u1"})
    assert answer["query"] == "daily_listening"
    assert answer["engine"] == "duckdb"
    assert answer["columns"] == ["date", "plays", "minutes", "distinct_tracks", "distinct_artists"]
    first = answer["rows"][0]
    assert first == {
        "date": "2026-03-01",
        "plays": 3,
        "minutes": 8.5,
        "distinct_tracks": 3,
        "distinct_artists": 3,
    }
    assert [type(first[c]) for c in answer["columns"]] == [str, int, float, int, int]
    assert json.loads(json.dumps(answer)) == answer


def test_daily_listening_all_users(engine: DuckDBEngine) -> None:
    assert rows(engine, "daily_listening", **RANGE) == [
        # P1 T1, P2 T2, P3 T3, Q1 T2: 3+4+1.5+4 min; tracks T1,T2,T3; artists A1,A2,A3
        ("2026-03-01", 4, 12.5, 3, 3),
        # P4 T1, P5 local (counts, 0 min, no track), Q2 T5: 3+0+1.0905; tracks T1,T5; A1,A2
        ("2026-03-02", 3, 4.09, 2, 2),
        # no row for 03-03: nobody played anything
        # P6 T4 (latest duration 3.5, credits now A3 only), P7 T2, Q3+Q4 T0: 3.5+4+2+2
        ("2026-03-04", 4, 11.5, 3, 3),
        # Q5 (03-05) is after `end`
    ]


def test_daily_listening_one_user(engine: DuckDBEngine) -> None:
    assert rows(engine, "daily_listening", **RANGE, user="u1") == [
        ("2026-03-01", 3, 8.5, 3, 3),  # P1-P3: 3+4+1.5; A1 (T1, T2), A2 (T2), A3 (T3)
        ("2026-03-02", 2, 3.0, 1, 1),  # P4 T1 + P5 local: 3+0; one track, one artist
        ("2026-03-04", 2, 7.5, 2, 3),  # P6 T4 + P7 T2: 3.5+4; A3, A2, A1
    ]


def test_daily_listening_single_day_and_unknown_user(engine: DuckDBEngine) -> None:
    assert rows(engine, "daily_listening", start="2026-03-02", end="2026-03-02") == [
        ("2026-03-02", 3, 4.09, 2, 2)
    ]
    assert rows(engine, "daily_listening", **RANGE, user="nobody") == []


def test_top_artists_counts_a_play_once_per_credited_artist(engine: DuckDBEngine) -> None:
    assert rows(engine, "top_artists", **RANGE) == [
        # T1 (P1, P4) + T2 (P2, P7, Q1): 2*3 + 3*4 min
        ("A1", "Aurora", 5, 18.0),
        # T2 (P2, P7, Q1) + T5 (Q2): 3*4 + 1.0905; latest name, not "Boris (old)"
        ("A2", "Boris", 4, 13.09),
        # T3 (P3) + T4 (P6; its 03-01 credit to A2 is stale) + T0 (Q3, Q4): 1.5+3.5+2*2.
        # Ties A2 on plays: "Boris" < "Cleo"
        ("A3", "Cleo", 4, 9.0),
    ]


def test_top_artists_limit_and_user(engine: DuckDBEngine) -> None:
    assert rows(engine, "top_artists", **RANGE, limit="2") == [
        ("A1", "Aurora", 5, 18.0),
        ("A2", "Boris", 4, 13.09),
    ]
    assert rows(engine, "top_artists", **RANGE, user="u1") == [
        ("A1", "Aurora", 4, 14.0),  # P1, P2, P4, P7: 3+4+3+4
        ("A2", "Boris", 2, 8.0),  # P2, P7
        ("A3", "Cleo", 2, 5.0),  # P3, P6: 1.5+3.5; tie on plays, by name
    ]


def test_top_tracks_ties_by_name_then_id(engine: DuckDBEngine) -> None:
    assert rows(engine, "top_tracks", **RANGE) == [
        # P2, P7, Q1; credit order A2 then A1, whatever the names' order
        ("T2", "Bravo", "Boris, Aurora", 3, 12.0),
        # T0 and T1 are both "Alpha" with 2 plays: by id, T0 first
        ("T0", "Alpha", "Cleo", 2, 4.0),  # Q3, Q4
        ("T1", "Alpha", "Aurora", 2, 6.0),  # P1, P4
        ("T3", "Charlie", "Cleo", 1, 1.5),  # P3
        ("T4", "Delta", "Cleo", 1, 3.5),  # P6: latest name and credits
        ("T5", "Echo", "Boris", 1, 1.09),  # Q2
        # P5 (local file) has no track id: no row
    ]
    assert rows(engine, "top_tracks", **RANGE, limit="1") == [
        ("T2", "Bravo", "Boris, Aurora", 3, 12.0)
    ]


def test_genres_share_over_all_plays(engine: DuckDBEngine) -> None:
    # 11 plays in range (P1-P7, Q1-Q4), P5 and genre-less ones included in the denominator.
    assert rows(engine, "genres", **RANGE) == [
        # T1 (P1, P4), T2 (P2, P7, Q1: A1 and A2 both say pop, once), T5 (Q2, A2's latest
        # non-null genres [rock, pop]): 6/11
        ("pop", 6, 0.5455),
        # A1's 03-01 genres survive its null 03-02 row: P1, P2, P4, P7, Q1 -> 5/11
        ("synth", 5, 0.4545),
        ("rock", 4, 0.3636),  # A2: P2, P7, Q1, Q2 -> 4/11
    ]


def test_genres_ties_by_name(engine: DuckDBEngine) -> None:
    # u2: Q1 T2 (rock, pop, synth), Q2 T5 (rock, pop), Q3 + Q4 T0 (Cleo: no genres) = 4 plays
    assert rows(engine, "genres", **RANGE, user="u2") == [
        ("pop", 2, 0.5),
        ("rock", 2, 0.5),
        ("synth", 1, 0.25),
    ]


def test_listening_clock_utc_has_all_24_hours(engine: DuckDBEngine) -> None:
    answer = rows(engine, "listening_clock", **RANGE)
    assert [hour for hour, _, _ in answer] == list(range(24))
    assert [row for row in answer if row[1]] == [
        (0, 1, 3.0),  # P4 00:10 T1
        (4, 2, 7.5),  # P6 04:40 T4, P7 04:50 T2
        (8, 2, 7.0),  # P1 08:15 T1, P2 08:45 T2
        (9, 2, 4.0),  # Q3, Q4 T0
        (10, 1, 4.0),  # Q1 T2
        (12, 1, 0.0),  # P5 local file: a play with 0 minutes
        (13, 1, 1.09),  # Q2 T5
        (23, 1, 1.5),  # P3 23:30 T3
    ]
    assert all(row == (row[0], 0, 0.0) for row in answer if not row[1])


def test_listening_clock_half_hour_zone(engine: DuckDBEngine) -> None:
    # Asia/Kolkata is UTC+05:30 all year.
    answer = rows(engine, "listening_clock", **RANGE, tz="Asia/Kolkata")
    assert len(answer) == 24
    assert [row for row in answer if row[1]] == [
        (5, 2, 4.5),  # P3 23:30 -> 05:00 (next day), P4 00:10 -> 05:40: 1.5 + 3
        (10, 2, 7.5),  # P6 04:40 -> 10:10, P7 04:50 -> 10:20
        (13, 1, 3.0),  # P1 08:15 -> 13:45
        (14, 3, 8.0),  # P2 08:45 -> 14:15, Q3 09:00 -> 14:30, Q4 09:05 -> 14:35
        (15, 1, 4.0),  # Q1 10:00 -> 15:30
        (17, 1, 0.0),  # P5 12:00 -> 17:30
        (19, 1, 1.09),  # Q2 13:30 -> 19:00
    ]


def test_listening_clock_new_york(engine: DuckDBEngine) -> None:
    # Early March 2026 is before US daylight saving (2026-03-08): UTC-5.
    answer = rows(engine, "listening_clock", **RANGE, tz="America/New_York", user="u1")
    assert [row for row in answer if row[1]] == [
        (3, 2, 7.0),  # P1 08:15 -> 03:15, P2 08:45 -> 03:45
        (7, 1, 0.0),  # P5 12:00 -> 07:00
        (18, 1, 1.5),  # P3 23:30 -> 18:30
        (19, 1, 3.0),  # P4 00:10 -> 19:10 the day before
        (23, 2, 7.5),  # P6 04:40 -> 23:40, P7 04:50 -> 23:50
    ]


def test_playlist_changes_against_latest_readable_snapshot(engine: DuckDBEngine) -> None:
    # 03-04 against 03-01: 03-02 was not readable and 03-03 has no snapshot.
    assert rows(engine, "playlist_changes", playlist="PL1", date="2026-03-04", user="u1") == [
        ("T2", "Bravo", "moved", 1, 2),  # first position counts on both days (not 6, not 5)
        (None, "My Demo", "same", 3, 3),  # a local file, matched by its name
        ("T1", "Alpha", "moved", 4, 1),  # position 2 is a null item: a gap, no row
        ("T4", "Delta", "added", 5, None),
        (None, "New Demo", "added", 7, None),  # another local file: another name, another item
        ("T3", "Charlie", "removed", None, 4),  # removed last, by previous position
        ("T5", "Echo", "removed", None, 6),
        (None, "Old Demo", "removed", None, 7),
    ]


def test_playlist_changes_first_snapshot_is_all_added(engine: DuckDBEngine) -> None:
    assert rows(engine, "playlist_changes", playlist="PL1", date="2026-03-01", user="u1") == [
        ("T1", "Alpha", "added", 1, None),
        ("T2", "Bravo", "added", 2, None),
        (None, "My Demo", "added", 3, None),
        ("T3", "Charlie", "added", 4, None),
        # position 5 repeats T2: it counts at position 2 only
        ("T5", "Echo", "added", 6, None),
        (None, "Old Demo", "added", 7, None),
    ]


def test_playlist_changes_unreadable_or_missing_day_and_other_user(engine: DuckDBEngine) -> None:
    # 03-02 could not be read: nothing to compare (not "everything removed").
    assert rows(engine, "playlist_changes", playlist="PL1", date="2026-03-02", user="u1") == []
    assert rows(engine, "playlist_changes", playlist="PL1", date="2026-03-03", user="u1") == []
    # u2 follows PL1: their own snapshots only, and 03-04 is their first.
    assert rows(engine, "playlist_changes", playlist="PL1", date="2026-03-04", user="u2") == [
        ("T5", "Echo", "added", 1, None)
    ]


def test_top_items_movement(engine: DuckDBEngine) -> None:
    params = {"item_type": "artist", "time_range": "short_term", "user": "u1"}
    # 03-03 against 03-01 (03-02 holds medium_term only)
    assert rows(engine, "top_items_movement", **params, date="2026-03-03") == [
        (1, "A3", "Cleo", 3, 2),  # up from 3 to 1: 3 - 1
        (2, "A1", "Aurora", 1, -1),
        (3, "A4", None, None, None),  # new, and an artist the lake has no row for
    ]
    # The first snapshot: everything is new; names from the latest rows ("Boris").
    assert rows(engine, "top_items_movement", **params, date="2026-03-01") == [
        (1, "A1", "Aurora", None, None),
        (2, "A2", "Boris", None, None),
        (3, "A3", "Cleo", None, None),
    ]


def test_top_items_movement_tracks_and_other_range(engine: DuckDBEngine) -> None:
    tracks = {"item_type": "track", "time_range": "short_term", "user": "u1"}
    assert rows(engine, "top_items_movement", **tracks, date="2026-03-03") == [
        (1, "T4", "Delta", None, None),
        (2, "T1", "Alpha", 1, -1),  # T2 dropped out: only the day's items are listed
    ]
    medium = {"item_type": "artist", "time_range": "medium_term", "user": "u1"}
    assert rows(engine, "top_items_movement", **medium, date="2026-03-02") == [
        (1, "A2", "Boris", None, None)
    ]
    assert rows(engine, "top_items_movement", **medium, date="2026-03-04") == []


def test_latest_views(engine: DuckDBEngine) -> None:
    with engine.connect() as connection:
        tracks = connection.execute(
            "SELECT track_id, name, duration_ms, CAST(snapshot_date AS VARCHAR) "
            "FROM tracks_latest ORDER BY track_id"
        ).fetchall()
        credits = connection.execute(
            "SELECT track_id, artist_id, artist_position FROM track_artists_latest "
            "WHERE track_id IN ('T2', 'T4') ORDER BY track_id, artist_position"
        ).fetchall()
        artists = connection.execute(
            "SELECT artist_id, name, genres FROM artists_latest ORDER BY artist_id"
        ).fetchall()
        albums = connection.execute(
            "SELECT album_id, name FROM albums_latest ORDER BY album_id"
        ).fetchall()
    assert tracks == [
        ("T0", "Alpha", 120000, "2026-03-02"),
        ("T1", "Alpha", 180000, "2026-03-02"),  # in 03-01 and 03-02: the later one
        ("T2", "Bravo", 240000, "2026-03-01"),
        ("T3", "Charlie", 90000, "2026-03-01"),
        ("T4", "Delta", 210000, "2026-03-03"),
        ("T5", "Echo", 65432, "2026-03-02"),
        ("T6", "Foxtrot", 150000, "2026-04-03"),
    ]
    assert credits == [("T2", "A2", 1), ("T2", "A1", 2), ("T4", "A3", 1)]
    assert artists == [
        ("A1", "Aurora", ["pop", "synth"]),  # latest row's genres are null: 03-01's stand
        ("A2", "Boris", ["rock", "pop"]),
        ("A3", "Cleo", []),  # known to have none; the later null does not erase that
        ("A5", "Esme", ["folk"]),
    ]
    assert albums == [
        ("AL1", "Bravo Sessions"),  # 03-02's name, not 03-01's "Bravo (demos)"
        ("AL2", "Greatest Hits"),
        ("AL3", "Greatest Hits"),
        ("AL5", "Foxtrot"),  # AL4 has no album row: tracks name it, nothing describes it
    ]


def test_latest_views_of_a_lake_without_files_are_empty_and_typed(tmp_path: Path) -> None:
    with DuckDBEngine(tmp_path).connect() as connection:
        for view in ("tracks_latest", "albums_latest", "artists_latest", "track_artists_latest"):
            assert connection.execute(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]
        described = connection.execute("DESCRIBE albums_latest").fetchall()
    assert ("release_year", "INTEGER") in [(c[0], c[1]) for c in described]


def test_get_execution_returns_a_recent_answer(engine: DuckDBEngine) -> None:
    answer = engine.run("top_tracks", {**RANGE, "limit": "1"})
    assert engine.get_execution(answer["execution_id"]) == answer
    with pytest.raises(UnknownExecution):
        engine.get_execution("00000000-0000-0000-0000-000000000000")


def required_params(name: str) -> dict[str, str]:
    samples = {
        "start": "2026-03-01",
        "end": "2026-03-04",
        "date": "2026-03-04",
        "user": "u1",
        "playlist": "PL1",
        "item_type": "artist",
        "time_range": "short_term",
    }
    query = next(q for q in list_queries() if q["name"] == name)
    return {p["name"]: samples[p["name"]] for p in query["parameters"] if p["required"]}


@pytest.mark.parametrize("name", [q["name"] for q in list_queries()])
def test_fresh_lake_answers_every_query_empty(tmp_path: Path, name: str) -> None:
    answer = DuckDBEngine(tmp_path).run(name, required_params(name))
    if name == "listening_clock":
        assert [(r["hour"], r["plays"], r["minutes"]) for r in answer["rows"]] == [
            (hour, 0, 0.0) for hour in range(24)
        ]
    elif name == "weekday_hour":
        assert [(r["weekday"], r["hour"], r["plays"], r["minutes"]) for r in answer["rows"]] == [
            (weekday, hour, 0, 0.0) for weekday in range(1, 8) for hour in range(24)
        ]
    elif name == "coverage":  # every date of the range, zeros included
        assert [tuple(r.values()) for r in answer["rows"]] == [
            (f"2026-03-0{day}", 0, 0, 0, 0, 0.0) for day in range(1, 5)
        ]
    else:
        assert answer["rows"] == []
    assert answer["columns"]  # the columns are known even without rows


def test_plays_without_any_dimension_files(tmp_path: Path) -> None:
    # Plays landed, but no run has written tracks/artists yet: plays count, minutes are 0.
    play = {
        "user_id": "u1",
        "played_at": at("2026-03-01", "10:00"),
        "track_id": "T1",
        "context_type": None,
        "context_uri": None,
    }
    write_rows(tmp_path, "plays", "2026-03-01", "u1", [play])
    engine = DuckDBEngine(tmp_path)
    assert rows(engine, "daily_listening", **RANGE) == [("2026-03-01", 1, 0.0, 1, 0)]
    assert rows(engine, "top_tracks", **RANGE) == [("T1", None, None, 1, 0.0)]
    assert rows(engine, "top_artists", **RANGE) == []


def test_old_plays_files_without_the_export_columns_still_read(tmp_path: Path) -> None:
    """A plays file from before the history export's columns (five columns) next to one with
    them: both are read, the old one's plays as API plays (source null -> api, item_type null
    -> track, ms_played null -> the track's duration)."""
    from query_fixtures import OLD_PLAYS_COLUMNS

    old = {"user_id": "u1", "played_at": at("2026-03-01", "10:00"), "track_id": "T1",
           "context_type": None, "context_uri": None}  # fmt: skip
    write_rows(tmp_path, "plays", "2026-03-01", "u1", [old], OLD_PLAYS_COLUMNS)
    tracks = [{"track_id": "T1", "name": "Alpha", "album_id": None, "duration_ms": 180000,
               "explicit": False, "isrc": None, "disc_number": 1, "track_number": 1}]  # fmt: skip
    write_rows(tmp_path, "tracks", "2026-03-01", "part", tracks)
    engine = DuckDBEngine(tmp_path)
    # Only old files: the new columns are there, null.
    with engine.connect() as connection:
        plays = connection.execute("SELECT source, item_type, ms_played FROM plays").fetchall()
    assert plays == [(None, None, None)]
    assert rows(engine, "coverage", start="2026-03-01", end="2026-03-01") == [
        ("2026-03-01", 1, 1, 0, 0, 0.0)
    ]

    new = {**old, "played_at": at("2026-03-02", "10:00"), "source": "export",
           "item_type": "track", "ms_played": 60000, "track_name": "Alpha"}  # fmt: skip
    write_rows(tmp_path, "plays", "2026-03-02", "u1", [new])
    engine = DuckDBEngine(tmp_path)
    assert rows(engine, "daily_listening", start="2026-03-01", end="2026-03-02") == [
        ("2026-03-01", 1, 3.0, 1, 0),
        ("2026-03-02", 1, 1.0, 1, 0),
    ]
    assert rows(engine, "coverage", start="2026-03-01", end="2026-03-02") == [
        ("2026-03-01", 1, 1, 0, 0, 0.0),
        ("2026-03-02", 1, 0, 1, 0, 0.0),
    ]
    with engine.connect() as connection:
        view = connection.execute(
            "SELECT played_date, source, ms_played FROM plays ORDER BY played_at"
        ).fetchall()
    assert [(str(d), s, m) for d, s, m in view] == [
        ("2026-03-01", None, None),
        ("2026-03-02", "export", 60000),
    ]
