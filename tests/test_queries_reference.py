"""`weekday_hour`, `top_albums` and `discoveries` on DuckDB against answers computed in Python.

The reference below works each answer out from the rows tests/query_fixtures.py writes
(`lake_files()`), with its own reading of the `*_latest` views and of contract §6 — no SQL — so
a query and its reference agree only if both follow the contract. A few answers are also spelt
out by hand, so the reference itself is checked on the odd cases: a local file, a track with
two credited artists, ties, a DST change and half-hour zones, month boundaries, a user given or
not. Today every play is an API play, so every play counts and lasts its track's duration.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from query_fixtures import lake_files

from chalicelib.queries.duckdb_engine import DuckDBEngine

# --- the reference -----------------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    user_id: str
    played_at: datetime
    track_id: str | None

    @property
    def played_date(self) -> date:
        return self.played_at.date()  # UTC: the fixture's timestamps are UTC


class Reference:
    """The fixture lake read in Python: plays, and each dimension as of its latest partition."""

    def __init__(self) -> None:
        by_table: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for table, partition, _, rows in lake_files():
            by_table[table] += [(partition, row) for row in rows]
        self.plays = [
            Play(r["user_id"], r["played_at"], r["track_id"]) for _, r in by_table["plays"]
        ]
        self.tracks = _latest(by_table["tracks"], "track_id")
        self.albums = _latest(by_table["albums"], "album_id")
        self.artist_names = {
            k: r["name"] for k, r in _latest(by_table["artists"], "artist_id").items()
        }
        # A track's credits: all of those in its latest track_artists partition.
        newest = {}
        for partition, row in by_table["track_artists"]:
            newest[row["track_id"]] = max(partition, newest.get(row["track_id"], partition))
        self.credits: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for partition, row in by_table["track_artists"]:
            if partition == newest[row["track_id"]]:
                self.credits[row["track_id"]].append((row["artist_position"], row["artist_id"]))

    def counted(self, user: str | None) -> list[Play]:
        """The counted plays of the whole lake (all of them, today), of `user` if given."""
        return [p for p in self.plays if user is None or p.user_id == user]

    def in_range(self, start: str, end: str, user: str | None) -> list[Play]:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        return [p for p in self.counted(user) if first <= p.played_date <= last]

    def duration(self, play: Play) -> int:
        track = self.tracks.get(play.track_id) if play.track_id else None
        return (track or {}).get("duration_ms") or 0

    def artists_of(self, play: Play) -> set[str]:
        return {artist for _, artist in self.credits.get(play.track_id or "", [])}

    # --- the three queries ---

    def weekday_hour(self, start: str, end: str, user: str | None, tz: str) -> list[tuple]:
        plays: dict[tuple[int, int], int] = defaultdict(int)
        ms: dict[tuple[int, int], int] = defaultdict(int)
        for play in self.in_range(start, end, user):
            local = play.played_at.astimezone(ZoneInfo(tz))
            cell = (local.isoweekday(), local.hour)
            plays[cell] += 1
            ms[cell] += self.duration(play)
        return [
            (weekday, hour, plays[weekday, hour], minutes(ms[weekday, hour]))
            for weekday in range(1, 8)
            for hour in range(24)
        ]

    def top_albums(self, start: str, end: str, user: str | None, limit: int) -> list[tuple]:
        plays: dict[str, list[Play]] = defaultdict(list)
        for play in self.in_range(start, end, user):
            album = (
                (self.tracks.get(play.track_id) or {}).get("album_id") if play.track_id else None
            )
            if album is not None:
                plays[album].append(play)
        rows = []
        for album, its_plays in plays.items():
            first_position: dict[str, int] = {}
            for track in {p.track_id for p in its_plays}:
                for position, artist in self.credits.get(track, []):
                    first_position[artist] = min(position, first_position.get(artist, position))
            named = sorted(
                (position, self.artist_names[artist], artist)
                for artist, position in first_position.items()
                if self.artist_names.get(artist) is not None
            )
            name = (self.albums.get(album) or {}).get("name")
            rows.append((
                album,
                name,
                ", ".join(n for _, n, _ in named) or None,
                len(its_plays),
                minutes(sum(self.duration(p) for p in its_plays)),
            ))  # fmt: skip
        rows.sort(key=lambda r: (-r[3], r[1] is None, r[1] or "", r[0]))
        return rows[:limit]

    def discoveries(self, start: str, end: str, user: str | None) -> list[tuple]:
        every = sorted(self.counted(user), key=lambda p: p.played_at)
        artist_month: dict[str, str] = {}
        track_month: dict[str, str] = {}
        for play in every:  # earliest first: the first month seen is the first play's
            for artist in self.artists_of(play):
                artist_month.setdefault(artist, month(play))
            if play.track_id is not None:
                track_month.setdefault(play.track_id, month(play))
        selected = self.in_range(start, end, user)
        rows = []
        for m in sorted({month(p) for p in selected}):
            rows.append((
                m,
                sum(1 for first in artist_month.values() if first == m),
                sum(1 for first in track_month.values() if first == m),
                sum(
                    1 for p in selected
                    if month(p) == m and any(artist_month[a] == m for a in self.artists_of(p))
                ),
            ))  # fmt: skip
        return rows


def _latest(rows: list[tuple[str, dict[str, Any]]], key: str) -> dict[str, dict[str, Any]]:
    chosen: dict[str, tuple[str, dict[str, Any]]] = {}
    for partition, row in rows:
        if row[key] not in chosen or partition > chosen[row[key]][0]:
            chosen[row[key]] = (partition, row)
    return {k: row for k, (_, row) in chosen.items()}


def minutes(ms: int) -> float:
    """round(ms / 60000.0, 2), halves away from zero as both engines round."""
    return float((Decimal(ms) / Decimal(60000)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def month(play: Play) -> str:
    return play.played_date.isoformat()[:7]


REFERENCE = Reference()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> DuckDBEngine:
    from query_fixtures import build_lake

    return DuckDBEngine(build_lake(tmp_path_factory.mktemp("lake")))


def rows(engine: DuckDBEngine, name: str, **params: str | None) -> list[tuple[Any, ...]]:
    answer = engine.run(name, {k: v for k, v in params.items() if v is not None})
    return [tuple(row[c] for c in answer["columns"]) for row in answer["rows"]]


EVERYTHING = ("2026-01-01", "2026-12-31")
RANGES = [
    ("2026-03-01", "2026-03-04"),  # the older queries' range
    EVERYTHING,
    ("2026-02-28", "2026-03-01"),  # across the end of February
    ("2026-03-08", "2026-03-08"),  # New York's DST change
    ("2026-03-15", "2026-04-30"),  # starts inside a month that began before it
    ("2026-03-03", "2026-03-03"),  # a day without plays
]
USERS = [None, "u1", "u2"]
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Europe/Berlin"]


# --- every query against the reference ----------------------------------------------------


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(("start", "end"), RANGES)
def test_top_albums_equals_the_reference(
    engine: DuckDBEngine, start: str, end: str, user: str | None
) -> None:
    expected = REFERENCE.top_albums(start, end, user, 10)
    assert rows(engine, "top_albums", start=start, end=end, user=user) == expected


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("limit", [1, 2])
def test_top_albums_limit_equals_the_reference(
    engine: DuckDBEngine, user: str | None, limit: int
) -> None:
    expected = REFERENCE.top_albums(*EVERYTHING, user, limit)
    assert rows(engine, "top_albums", **dict(zip(("start", "end"), EVERYTHING, strict=True)),
                user=user, limit=str(limit)) == expected  # fmt: skip


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(("start", "end"), RANGES)
def test_discoveries_equals_the_reference(
    engine: DuckDBEngine, start: str, end: str, user: str | None
) -> None:
    expected = REFERENCE.discoveries(start, end, user)
    assert rows(engine, "discoveries", start=start, end=end, user=user) == expected


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("user", USERS)
def test_weekday_hour_equals_the_reference(engine: DuckDBEngine, user: str | None, tz: str) -> None:
    expected = REFERENCE.weekday_hour(*EVERYTHING, user, tz)
    assert rows(engine, "weekday_hour", start=EVERYTHING[0], end=EVERYTHING[1], user=user,
                tz=tz) == expected  # fmt: skip


@pytest.mark.parametrize("tz", ZONES)
def test_weekday_hour_of_a_range_equals_the_reference(engine: DuckDBEngine, tz: str) -> None:
    for start, end in (RANGES[0], RANGES[3]):
        expected = REFERENCE.weekday_hour(start, end, None, tz)
        assert rows(engine, "weekday_hour", start=start, end=end, tz=tz) == expected


def test_the_reference_ranges_exercise_the_odd_cases() -> None:
    """The parametrised ranges above are not vacuous: each query has rows in most of them."""
    assert len(REFERENCE.top_albums(*EVERYTHING, None, 10)) == 5
    assert len(REFERENCE.discoveries(*EVERYTHING, None)) == 4
    assert sum(r[2] for r in REFERENCE.weekday_hour(*EVERYTHING, None, "UTC")) == len(
        REFERENCE.plays
    )
    # Every range and user of the parametrised tests has albums and months, but the empty day
    # and u2 on 03-08 (nothing played): those answer nothing.
    for start, end in RANGES:
        for user in USERS:
            empty = start == "2026-03-03" or (start == "2026-03-08" and user == "u2")
            assert bool(REFERENCE.top_albums(start, end, user, 10)) is not empty
            assert bool(REFERENCE.discoveries(start, end, user)) is not empty


# --- answers spelt out by hand --------------------------------------------------------------

RANGE = {"start": "2026-03-01", "end": "2026-03-04"}


def test_weekday_hour_utc(engine: DuckDBEngine) -> None:
    answer = rows(engine, "weekday_hour", **RANGE)
    assert [(w, h) for w, h, _, _ in answer] == [(w, h) for w in range(1, 8) for h in range(24)]
    assert [row for row in answer if row[2]] == [
        (1, 0, 1, 3.0),  # Monday 03-02: P4 00:10 T1
        (1, 12, 1, 0.0),  # P5 local file: a play with 0 minutes
        (1, 13, 1, 1.09),  # Q2 T5
        (3, 4, 2, 7.5),  # Wednesday 03-04: P6 T4, P7 T2
        (3, 9, 2, 4.0),  # Q3, Q4 T0
        (7, 8, 2, 7.0),  # Sunday 03-01: P1 T1, P2 T2
        (7, 10, 1, 4.0),  # Q1 T2
        (7, 23, 1, 1.5),  # P3 23:30 T3
    ]
    assert all(row[2:] == (0, 0.0) for row in answer if not row[2])
    assert answer == REFERENCE.weekday_hour(RANGE["start"], RANGE["end"], None, "UTC")


def test_weekday_hour_half_hour_zone_moves_plays_to_the_next_day(engine: DuckDBEngine) -> None:
    # Asia/Kolkata is UTC+05:30: Sunday 23:30 UTC is Monday 05:00 there.
    answer = rows(engine, "weekday_hour", **RANGE, user="u1", tz="Asia/Kolkata")
    assert [row for row in answer if row[2]] == [
        (1, 5, 2, 4.5),  # P3 Sun 23:30 -> Mon 05:00, P4 Mon 00:10 -> 05:40
        (1, 17, 1, 0.0),  # P5 12:00 -> 17:30
        (3, 10, 2, 7.5),  # P6, P7 04:40/04:50 -> 10:10/10:20
        (7, 13, 1, 3.0),  # P1 08:15 -> 13:45
        (7, 14, 1, 4.0),  # P2 08:45 -> 14:15
    ]


def test_weekday_hour_across_a_dst_change_and_back_a_day(engine: DuckDBEngine) -> None:
    # New York: EST (UTC-5) until 2026-03-08 07:00 UTC, then EDT (UTC-4).
    answer = rows(engine, "weekday_hour", start="2026-03-02", end="2026-03-08", user="u1",
                  tz="America/New_York")  # fmt: skip
    assert [row for row in answer if row[2]] == [
        (1, 7, 1, 0.0),  # P5 Mon 12:00 UTC -> 07:00
        (2, 23, 2, 7.5),  # P6, P7 Wed 04:40/04:50 UTC -> Tuesday 23:40/23:50
        (7, 1, 1, 3.0),  # D1 Sun 06:30 UTC -> 01:30 EST
        (7, 3, 1, 4.0),  # D2 Sun 07:30 UTC -> 03:30 EDT (02:xx does not exist that day)
        (7, 19, 1, 3.0),  # P4 Mon 00:10 UTC -> Sunday 19:10
    ]


def test_top_albums_ties_local_files_and_two_artists(engine: DuckDBEngine) -> None:
    assert rows(engine, "top_albums", **RANGE) == [
        # T2 (P2, P7, Q1) + T5 (Q2): 3*4 + 1.0905. T2 credits A2 then A1, T5 A2: Boris holds
        # position 1, Aurora 2 (credit order, not name order). Latest name, not "Bravo (demos)".
        ("AL1", "Bravo Sessions", "Boris, Aurora", 4, 13.09),
        # Same plays, same name: by id, AL2 (fewer minutes) before AL3.
        ("AL2", "Greatest Hits", "Cleo", 2, 4.0),  # T0: Q3, Q4
        ("AL3", "Greatest Hits", "Aurora", 2, 6.0),  # T1: P1, P4
        # T4's latest row says AL4, which has no album row: no name. Its stale 03-01 row (AL1)
        # and stale credits (A2, A3) do not count.
        ("AL4", None, "Cleo", 1, 3.5),
        # P3's T3 has no album, P5 is a local file: neither has a row.
    ]
    assert rows(engine, "top_albums", **RANGE, limit="2") == [
        ("AL1", "Bravo Sessions", "Boris, Aurora", 4, 13.09),
        ("AL2", "Greatest Hits", "Cleo", 2, 4.0),
    ]


def test_top_albums_names_only_the_artists_of_tracks_played(engine: DuckDBEngine) -> None:
    # u2 on 03-02 played only T5 of AL1: Boris, not Aurora (credited on T2, unplayed then).
    assert rows(engine, "top_albums", start="2026-03-02", end="2026-03-02", user="u2") == [
        ("AL1", "Bravo Sessions", "Boris", 1, 1.09)
    ]
    # 03-04: AL1 (P7) and AL4 (P6) tie on one play; the unknown name sorts last.
    assert rows(engine, "top_albums", start="2026-03-04", end="2026-03-04") == [
        ("AL2", "Greatest Hits", "Cleo", 2, 4.0),
        ("AL1", "Bravo Sessions", "Boris, Aurora", 1, 4.0),
        ("AL4", None, "Cleo", 1, 3.5),
    ]
    # u1, 03-01..03-04: AL1 and AL3 tie on plays: "Bravo Sessions" < "Greatest Hits".
    assert rows(engine, "top_albums", **RANGE, user="u1") == [
        ("AL1", "Bravo Sessions", "Boris, Aurora", 2, 8.0),
        ("AL3", "Greatest Hits", "Aurora", 2, 6.0),
        ("AL4", None, "Cleo", 1, 3.5),
    ]


def test_discoveries_by_anyone(engine: DuckDBEngine) -> None:
    assert rows(engine, "discoveries", start="2026-01-01", end="2026-12-31") == [
        # F1 T3 (Cleo), F2 T5 (Boris) at 23:50 on Feb 28: February in UTC.
        ("2026-02", 2, 2, 2),
        # Aurora (P1) is March's only new artist; tracks T1, T2, T4, T0 (T3, T5 were
        # February's); plays crediting Aurora: P1, P2, P4, P7, D1, D2, Q1, Q5.
        ("2026-03", 1, 4, 8),
        # Esme and T6 (R4, S1; T6 also credits Boris, who is not new); R2 and the local R3 count
        # as plays of April but are not new.
        ("2026-04", 1, 1, 2),
        ("2026-05", 0, 0, 0),  # R5: a local file only — a month with plays, nothing new
    ]


def test_discoveries_of_one_user(engine: DuckDBEngine) -> None:
    # u2 first heard Boris, Aurora (Q1) and Cleo (Q3) in March, though u1 heard two of them
    # in February: first plays are the user's own.
    assert rows(engine, "discoveries", start="2026-01-01", end="2026-12-31", user="u2") == [
        ("2026-03", 3, 5, 6),  # T2, T5, T0, T1, T4; Q1-Q5 and R1 all credit a new artist
        ("2026-04", 1, 1, 1),  # Esme and T6 (R4); R2's T4/Cleo were March's
        ("2026-05", 0, 0, 0),
    ]
    assert rows(engine, "discoveries", start="2026-01-01", end="2026-12-31", user="u1") == [
        ("2026-02", 2, 2, 2),
        ("2026-03", 1, 3, 6),  # Aurora; T1, T2, T4; P1, P2, P4, P7, D1, D2
        ("2026-04", 1, 1, 1),  # Esme, T6; S1
    ]


def test_discoveries_look_before_the_range(engine: DuckDBEngine) -> None:
    # March's first plays (03-01..03-05) lie before this range, yet they are March's
    # discoveries; plays_of_new counts the month's plays inside the range only (R1).
    assert rows(engine, "discoveries", start="2026-03-15", end="2026-04-30", user="u2") == [
        ("2026-03", 3, 5, 1),
        ("2026-04", 1, 1, 1),
    ]
    # 03-01 alone: Cleo and T3 were first heard in February, so March has only Aurora and
    # T1, T2 as new (T0, T4 come later in March but are still March's).
    assert rows(engine, "discoveries", start="2026-03-01", end="2026-03-01", user="u1") == [
        ("2026-03", 1, 3, 2),  # plays of new: P1, P2 (Aurora); P3 is Cleo's, February's
    ]
    assert rows(engine, "discoveries", start="2026-03-03", end="2026-03-03") == []


def test_new_queries_on_a_lake_with_plays_but_no_dimensions(tmp_path: Path) -> None:
    from query_fixtures import at, write_rows

    play = {"user_id": "u1", "played_at": at("2026-03-01", "10:00"), "track_id": "T1",
            "context_type": None, "context_uri": None}  # fmt: skip
    write_rows(tmp_path, "plays", "2026-03-01", "u1", [play])
    engine = DuckDBEngine(tmp_path)
    # Sunday 10:00: counted, 0 minutes; no album known; a new track but no known artist.
    assert [r for r in rows(engine, "weekday_hour", **RANGE) if r[2]] == [(7, 10, 1, 0.0)]
    assert rows(engine, "top_albums", **RANGE) == []
    assert rows(engine, "discoveries", **RANGE) == [("2026-03", 0, 1, 0)]
