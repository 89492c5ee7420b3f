"""Every play-based named query on DuckDB against answers computed in Python.

The reference below works each answer out from the rows tests/query_fixtures.py writes
(`lake_files()`), with its own reading of the `*_latest` views and of contract §6 — no SQL — so
a query and its reference agree only if both follow the contract. The lake mixes plays files
from before the history export's columns (u2's 2026 plays), API-only plays, export-only plays
with names but no credits, plays both saw, episodes, audiobooks, short and zero-length plays,
skips marked or not, local files, and history gaps with and without an import covering them.
A few answers are also spelt out by hand, so the reference itself is checked on the odd cases.

The reference's reading of §6, where the contract leaves a choice (and the queries make the same
one): a track known by name only (no track id) is its name with the play's artist name; an
album known by name only likewise; several plays of one id that disagree on the export's names
show the least name; gap minutes of several users add up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from query_fixtures import lake_files

from chalicelib.queries.duckdb_engine import DuckDBEngine

# --- the reference -----------------------------------------------------------------------

STREAM_MS = 30000  # Spotify's threshold for a stream (contract §6)
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Play:
    user_id: str
    played_at: datetime
    track_id: str | None
    source: str | None = None
    item_type: str | None = None
    episode_id: str | None = None
    ms_played: int | None = None
    skipped: bool | None = None
    track_name: str | None = None
    artist_name: str | None = None
    album_name: str | None = None
    episode_name: str | None = None
    show_name: str | None = None

    @property
    def played_date(self) -> date:
        return self.played_at.date()  # UTC: the fixture's timestamps are UTC

    @property
    def is_music(self) -> bool:
        return (self.item_type or "track") in ("track", "unknown")

    @property
    def is_stream(self) -> bool:
        return self.ms_played is None or self.ms_played >= STREAM_MS


# An artist, track or album: ("id", id) or, known by name only, ("name", name[, artist name]).
Key = tuple[str, ...]


class Reference:
    """The fixture lake read in Python: plays, and each dimension as of its latest partition."""

    def __init__(self) -> None:
        by_table: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for table, partition, _, rows in lake_files():
            by_table[table] += [(partition, row) for row in rows]
        names = {f.name for f in fields(Play)}
        # Old plays files lack the export's columns: `get` reads them as null.
        self.plays = [
            Play(**{k: v for k, v in r.items() if k in names}) for _, r in by_table["plays"]
        ]
        self.tracks = _latest(by_table["tracks"], "track_id")
        self.albums = _latest(by_table["albums"], "album_id")
        self.artist_names = {
            k: r["name"] for k, r in _latest(by_table["artists"], "artist_id").items()
        }
        self.genres = {
            k: r["genres"]
            for k, r in _latest(
                [(p, r) for p, r in by_table["artists"] if r["genres"] is not None], "artist_id"
            ).items()
        }
        # A track's credits: all of those in its latest track_artists partition.
        newest = {}
        for partition, row in by_table["track_artists"]:
            newest[row["track_id"]] = max(partition, newest.get(row["track_id"], partition))
        self.credits: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for partition, row in by_table["track_artists"]:
            if partition == newest[row["track_id"]]:
                self.credits[row["track_id"]].append((row["artist_position"], row["artist_id"]))
        self.gaps = [r for _, r in by_table["history_gaps"]]
        self.imports = [r for _, r in by_table["imports"]]

    # --- reading plays as §6 does ---

    def of(self, user: str | None, start: str | None = None, end: str | None = None) -> list[Play]:
        """Every play of `user` (all users: None), in [start, end] when given."""
        first = date.fromisoformat(start) if start else date.min
        last = date.fromisoformat(end) if end else date.max
        return [
            p for p in self.plays
            if (user is None or p.user_id == user) and first <= p.played_date <= last
        ]  # fmt: skip

    def counted(self, user: str | None) -> list[Play]:
        """The counted plays of the whole lake: music plays that are streams."""
        return [p for p in self.of(user) if p.is_music and p.is_stream]

    def in_range(self, start: str, end: str, user: str | None) -> list[Play]:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        return [p for p in self.counted(user) if first <= p.played_date <= last]

    def played_ms(self, play: Play) -> int:
        if play.ms_played is not None:
            return play.ms_played
        return (self.tracks.get(play.track_id or "") or {}).get("duration_ms") or 0

    def track_name(self, play: Play) -> str | None:
        return (self.tracks.get(play.track_id or "") or {}).get("name") or play.track_name

    def track_key(self, play: Play) -> Key | None:
        if play.track_id is not None:
            return ("id", play.track_id)
        if play.track_name is not None:
            return ("name", play.track_name, play.artist_name or "")
        return None

    def album_of(self, play: Play) -> tuple[Key, str | None] | None:
        """The play's album key and name, or None when it has no album."""
        album_id = (self.tracks.get(play.track_id or "") or {}).get("album_id")
        if album_id is not None:
            name = (self.albums.get(album_id) or {}).get("name") or play.album_name
            return ("id", album_id), name
        if play.album_name is not None:
            return ("name", play.album_name, play.artist_name or ""), play.album_name
        return None

    def credited(self, play: Play) -> list[tuple[int, Key, str | None]]:
        """(position, artist key, artist name) of the play's credited artists."""
        credits = self.credits.get(play.track_id or "")
        if credits:
            return [(pos, ("id", aid), self.artist_names.get(aid)) for pos, aid in credits]
        if play.artist_name is not None:
            return [(1, ("name", play.artist_name), play.artist_name)]
        return []

    def artist_keys(self, play: Play) -> set[Key]:
        return {key for _, key, _ in self.credited(play)}

    def artist_names_of_track(self, plays: list[Play]) -> str | None:
        """top_tracks' and skips' `artist_names` for the plays of one track."""
        credits = self.credits.get(plays[0].track_id or "")
        if credits:
            names = [self.artist_names.get(aid) for _, aid in sorted(credits)]
            return ", ".join(n for n in names if n is not None) or None
        return _least(p.artist_name for p in plays)

    # --- the queries ---

    def daily_listening(self, start: str, end: str, user: str | None) -> list[tuple]:
        by_day: dict[date, list[Play]] = defaultdict(list)
        for play in self.in_range(start, end, user):
            by_day[play.played_date].append(play)
        return [
            (
                day.isoformat(),
                len(plays),
                minutes(sum(self.played_ms(p) for p in plays)),
                len({k for p in plays if (k := self.track_key(p)) is not None}),
                len({k for p in plays for k in self.artist_keys(p)}),
            )
            for day, plays in sorted(by_day.items())
        ]

    def top_artists(self, start: str, end: str, user: str | None, limit: int) -> list[tuple]:
        plays: dict[Key, list[Play]] = defaultdict(list)
        for play in self.in_range(start, end, user):
            for key in self.artist_keys(play):
                plays[key].append(play)
        rows = []
        for key, its in plays.items():
            artist_id = key[1] if key[0] == "id" else None
            name = self.artist_names.get(key[1]) if key[0] == "id" else key[1]
            rows.append((artist_id, name, len(its), minutes(sum(map(self.played_ms, its)))))
        rows.sort(key=lambda r: (-r[2], *_last(r[1]), *_last(r[0])))
        return rows[:limit]

    def _by_track(self, plays: Iterable[Play]) -> dict[Key, list[Play]]:
        grouped: dict[Key, list[Play]] = defaultdict(list)
        for play in plays:
            key = self.track_key(play)
            if key is not None:
                grouped[key].append(play)
        return grouped

    def top_tracks(self, start: str, end: str, user: str | None, limit: int) -> list[tuple]:
        rows = [
            (
                its[0].track_id,
                _least(self.track_name(p) for p in its),
                self.artist_names_of_track(its),
                len(its),
                minutes(sum(map(self.played_ms, its))),
            )
            for its in self._by_track(self.in_range(start, end, user)).values()
        ]
        rows.sort(key=lambda r: (-r[3], *_last(r[1]), *_last(r[0]), *_last(r[2])))
        return rows[:limit]

    def genres_query(self, start: str, end: str, user: str | None, limit: int) -> list[tuple]:
        selected = self.in_range(start, end, user)
        plays: dict[str, int] = defaultdict(int)
        for play in selected:
            genres = {
                genre
                for _, aid in self.credits.get(play.track_id or "", [])
                for genre in self.genres.get(aid) or []
            }
            for genre in genres:
                plays[genre] += 1
        rows = [(g, n, rounded(Decimal(n) / Decimal(len(selected)), "0.0001"))
                for g, n in plays.items()]  # fmt: skip
        rows.sort(key=lambda r: (-r[1], r[0]))
        return rows[:limit]

    def listening_clock(self, start: str, end: str, user: str | None, tz: str) -> list[tuple]:
        plays: dict[int, int] = defaultdict(int)
        ms: dict[int, int] = defaultdict(int)
        for play in self.in_range(start, end, user):
            hour = play.played_at.astimezone(ZoneInfo(tz)).hour
            plays[hour] += 1
            ms[hour] += self.played_ms(play)
        return [(hour, plays[hour], minutes(ms[hour])) for hour in range(24)]

    def weekday_hour(self, start: str, end: str, user: str | None, tz: str) -> list[tuple]:
        plays: dict[tuple[int, int], int] = defaultdict(int)
        ms: dict[tuple[int, int], int] = defaultdict(int)
        for play in self.in_range(start, end, user):
            local = play.played_at.astimezone(ZoneInfo(tz))
            cell = (local.isoweekday(), local.hour)
            plays[cell] += 1
            ms[cell] += self.played_ms(play)
        return [
            (weekday, hour, plays[weekday, hour], minutes(ms[weekday, hour]))
            for weekday in range(1, 8)
            for hour in range(24)
        ]

    def top_albums(self, start: str, end: str, user: str | None, limit: int) -> list[tuple]:
        plays: dict[Key, list[Play]] = defaultdict(list)
        names: dict[Key, list[str | None]] = defaultdict(list)
        for play in self.in_range(start, end, user):
            album = self.album_of(play)
            if album is not None:
                plays[album[0]].append(play)
                names[album[0]].append(album[1])
        rows = []
        for key, its in plays.items():
            first_position: dict[Key, tuple[int, str | None]] = {}
            for play in its:
                for position, artist, name in self.credited(play):
                    if artist not in first_position or position < first_position[artist][0]:
                        first_position[artist] = (position, name)
            named = sorted(
                (position, name, artist[1] if artist[0] == "id" else "\uffff")
                for artist, (position, name) in first_position.items()
                if name is not None
            )
            rows.append((
                key[1] if key[0] == "id" else None,
                _least(names[key]),
                ", ".join(n for _, n, _ in named) or None,
                len(its),
                minutes(sum(map(self.played_ms, its))),
            ))  # fmt: skip
        rows.sort(key=lambda r: (-r[3], *_last(r[1]), *_last(r[0]), *_last(r[2])))
        return rows[:limit]

    def discoveries(self, start: str, end: str, user: str | None) -> list[tuple]:
        every = sorted(self.counted(user), key=lambda p: p.played_at)
        artist_month: dict[Key, str] = {}
        track_month: dict[Key, str] = {}
        for play in every:  # earliest first: the first month seen is the first play's
            for artist in self.artist_keys(play):
                artist_month.setdefault(artist, month(play))
            if (track := self.track_key(play)) is not None:
                track_month.setdefault(track, month(play))
        selected = self.in_range(start, end, user)
        rows = []
        for m in sorted({month(p) for p in selected}):
            rows.append((
                m,
                sum(1 for first in artist_month.values() if first == m),
                sum(1 for first in track_month.values() if first == m),
                sum(
                    1 for p in selected
                    if month(p) == m and any(artist_month[a] == m for a in self.artist_keys(p))
                ),
            ))  # fmt: skip
        return rows

    def top_shows(self, start: str, end: str, user: str | None, limit: int) -> list[tuple]:
        shows: dict[str | None, list[Play]] = defaultdict(list)
        for play in self.of(user, start, end):
            if play.item_type in ("episode", "audiobook") and play.is_stream:
                shows[play.show_name].append(play)
        rows = []
        for show, its in shows.items():
            episodes = {
                ("id", p.episode_id) if p.episode_id else ("name", p.episode_name)
                for p in its
                if p.episode_id or p.episode_name
            }
            ms = sum(p.ms_played or 0 for p in its)
            rows.append((show, len(episodes), len(its), minutes(ms)))
        rows.sort(key=lambda r: (-r[3], *_last(r[0])))
        return rows[:limit]

    def skips(self, start: str, end: str, user: str | None, limit: int) -> list[tuple]:
        known = [p for p in self.of(user, start, end) if p.is_music and p.ms_played is not None]
        rows = []
        for its in self._by_track(known).values():
            if len(its) < 3:
                continue
            skipped = sum(1 for p in its if not p.is_stream or p.skipped is True)
            rows.append((
                its[0].track_id,
                _least(self.track_name(p) for p in its),
                self.artist_names_of_track(its),
                len(its),
                skipped,
                rounded(Decimal(skipped) / Decimal(len(its)), "0.0001"),
            ))  # fmt: skip
        rows.sort(key=lambda r: (-r[5], -r[3], *_last(r[1]), *_last(r[0]), *_last(r[2])))
        return rows[:limit]

    def coverage(self, start: str, end: str, user: str | None) -> list[tuple]:
        selected = self.in_range(start, end, user)
        open_windows: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for gap in self.gaps:
            if user is not None and gap["user_id"] != user:
                continue
            covered = any(
                i["user_id"] == gap["user_id"]
                and i["first_ts"] <= gap["gap_from"]
                and i["last_ts"] >= gap["gap_to"]
                for i in self.imports
            )
            if not covered:
                open_windows[gap["user_id"]].append((epoch_ms(gap["gap_from"]),
                                                     epoch_ms(gap["gap_to"])))  # fmt: skip
        rows = []
        day, last = date.fromisoformat(start), date.fromisoformat(end)
        while day <= last:
            plays = [p for p in selected if p.played_date == day]
            by_source = defaultdict(int)
            for play in plays:
                by_source[play.source or "api"] += 1
            day_ms = epoch_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))
            gap_ms = 0
            for windows in open_windows.values():  # a minute counts once per user
                minute_set = _union_length(
                    (max(f, day_ms), min(t, day_ms + DAY_MS)) for f, t in windows
                )
                gap_ms += minute_set
            rows.append((day.isoformat(), len(plays), by_source["api"], by_source["export"],
                         by_source["both"], minutes(gap_ms)))  # fmt: skip
            day += timedelta(days=1)
        return rows


def _latest(rows: list[tuple[str, dict[str, Any]]], key: str) -> dict[str, dict[str, Any]]:
    chosen: dict[str, tuple[str, dict[str, Any]]] = {}
    for partition, row in rows:
        if row[key] not in chosen or partition > chosen[row[key]][0]:
            chosen[row[key]] = (partition, row)
    return {k: row for k, (_, row) in chosen.items()}


def _least(values: Iterable[str | None]) -> str | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _last(value: str | None) -> tuple[bool, str]:
    """A sort key putting None after every value (both engines sort NULLs last)."""
    return (value is None, value or "")


def _union_length(intervals: Iterable[tuple[int, int]]) -> int:
    covered, reach = 0, None
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if reach is None or start >= reach:
            covered += end - start
            reach = end
        elif end > reach:
            covered += end - reach
            reach = end
    return covered


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def rounded(value: Decimal, places: str) -> float:
    """Rounded halves away from zero, as both engines round."""
    return float(value.quantize(Decimal(places), rounding=ROUND_HALF_UP))


def minutes(ms: int) -> float:
    """round(ms / 60000.0, 2)."""
    return rounded(Decimal(ms) / Decimal(60000), "0.01")


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
EXPORT_MONTHS = ("2026-12-31", "2027-02-28")  # the history export's plays, gaps and imports
BOTH_YEARS = ("2026-01-01", "2027-12-31")
RANGES = [
    ("2026-03-01", "2026-03-04"),  # the older queries' range
    EVERYTHING,
    ("2026-02-28", "2026-03-01"),  # across the end of February
    ("2026-03-08", "2026-03-08"),  # New York's DST change
    ("2026-03-15", "2026-04-30"),  # starts inside a month that began before it
    ("2026-03-03", "2026-03-03"),  # a day without plays
    EXPORT_MONTHS,
    ("2027-01-05", "2027-01-05"),  # short plays, episodes, overlapping open gaps
    ("2027-01-06", "2027-01-07"),  # a covered gap, a partly covered one, local files
    BOTH_YEARS,
]
USERS = [None, "u1", "u2"]
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Europe/Berlin"]
LIMITED = ("top_artists", "top_tracks", "genres", "top_albums", "top_shows", "skips")
ZONED = ("listening_clock", "weekday_hour")


def expected(name: str, start: str, end: str, user: str | None, **extra: Any) -> list[tuple]:
    """The reference's answer to named query `name` (default limit 10, zone UTC)."""
    method = getattr(REFERENCE, "genres_query" if name == "genres" else name)
    if name in LIMITED:
        return method(start, end, user, int(extra.get("limit", 10)))
    if name in ZONED:
        return method(start, end, user, extra.get("tz", "UTC"))
    return method(start, end, user)


QUERIES = sorted(
    ("daily_listening", "discoveries", "coverage", *LIMITED, *ZONED)
)  # fmt: skip


# --- every query against the reference ----------------------------------------------------


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(("start", "end"), RANGES)
@pytest.mark.parametrize("name", QUERIES)
def test_every_query_equals_the_reference(
    engine: DuckDBEngine, name: str, start: str, end: str, user: str | None
) -> None:
    assert rows(engine, name, start=start, end=end, user=user) == expected(name, start, end, user)


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("limit", [1, 2, 3])
@pytest.mark.parametrize("name", LIMITED)
def test_limits_equal_the_reference(
    engine: DuckDBEngine, name: str, user: str | None, limit: int
) -> None:
    answer = rows(engine, name, start=BOTH_YEARS[0], end=BOTH_YEARS[1], user=user,
                  limit=str(limit))  # fmt: skip
    assert answer == expected(name, *BOTH_YEARS, user, limit=limit)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("name", ZONED)
def test_zones_equal_the_reference(
    engine: DuckDBEngine, name: str, user: str | None, tz: str
) -> None:
    for start, end in (BOTH_YEARS, RANGES[0], RANGES[3], EXPORT_MONTHS):
        answer = rows(engine, name, start=start, end=end, user=user, tz=tz)
        assert answer == expected(name, start, end, user, tz=tz)


def test_the_reference_ranges_exercise_the_odd_cases() -> None:
    """The parametrised ranges above are not vacuous: each query has rows in most of them, and
    the plays the counting rule leaves out are really there."""
    assert len(REFERENCE.top_albums(*EVERYTHING, None, 10)) == 5
    assert len(REFERENCE.discoveries(*EVERYTHING, None)) == 4
    assert sum(r[2] for r in REFERENCE.weekday_hour(*EVERYTHING, None, "UTC")) == len(
        REFERENCE.of(None, *EVERYTHING)
    )
    # Every 2026 range and user has albums and months, but the empty day and u2 on 03-08
    # (nothing played): those answer nothing.
    for start, end in RANGES[:6]:
        for user in USERS:
            empty = start == "2026-03-03" or (start == "2026-03-08" and user == "u2")
            assert bool(REFERENCE.top_albums(start, end, user, 10)) is not empty
            assert bool(REFERENCE.discoveries(start, end, user)) is not empty
    export = REFERENCE.of(None, *EXPORT_MONTHS)
    assert {p.source for p in export} == {"api", "export", "both"}
    assert {p.item_type for p in export} == {"track", "episode", "audiobook", "unknown"}
    assert {p.source for p in REFERENCE.of("u2", *EVERYTHING)} == {None}  # old files
    assert any(p.ms_played == 0 for p in export)
    assert len(REFERENCE.in_range(*EXPORT_MONTHS, None)) < len(export)
    for name in QUERIES:
        assert expected(name, *EXPORT_MONTHS, None), name
        assert expected(name, *EXPORT_MONTHS, "u1"), name


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


# --- the history export's plays, spelt out by hand (tests/query_fixtures.py, January 2027) ---

EXPORT = {"start": EXPORT_MONTHS[0], "end": EXPORT_MONTHS[1]}


def test_top_shows_counts_episodes_and_audiobooks_of_30_s(engine: DuckDBEngine) -> None:
    assert rows(engine, "top_shows", **EXPORT, user="u1") == [
        # Dune (E13, an audiobook) and The Daily (E10 30 min + E11 10 min; E12's 20 s does not
        # count) tie on 40 minutes: by name.
        ("Dune", 1, 1, 40.0),
        ("The Daily", 1, 2, 40.0),
        ("Radiolab", 1, 1, 0.75),  # E14: an episode without an id is told by its name
    ]
    # u2's EP2 (G2) is a second episode of The Daily.
    assert rows(engine, "top_shows", **EXPORT)[0] == ("The Daily", 2, 3, 60.0)
    assert rows(engine, "top_shows", **RANGE) == []  # the API never sees episodes


def test_skips_need_a_known_play_time_and_three_plays(engine: DuckDBEngine) -> None:
    assert rows(engine, "skips", **EXPORT, user="u1") == [
        # E3-E6: E4 (12 s, marked) and E5 (0 ms) are skips; E3's null `skipped` is not.
        ("T8", "India", "Juno", 4, 2, 0.5),
        # E7, E8 (29,999 ms), E9 (30,000 ms but marked skipped), E24: tie with T8, by name.
        (None, "Kilo", "Lima", 4, 2, 0.5),
        # E17, E18 (5 s), E19; E1 (API, no ms_played) is not a play with a known time.
        ("T1", "Alpha", "Aurora", 3, 1, 0.3333),
    ]
    assert rows(engine, "skips", **EXPORT, user="u2") == []  # one play per track
    assert rows(engine, "skips", **RANGE) == []  # API plays only


def test_coverage_marks_open_gaps_and_counts_by_source(engine: DuckDBEngine) -> None:
    assert rows(engine, "coverage", start="2026-12-31", end="2027-01-08") == [
        ("2026-12-31", 0, 0, 0, 0, 60.0),  # u2's V2 from 23:00
        ("2027-01-01", 0, 0, 0, 0, 30.0),  # ...to 00:30
        ("2027-01-02", 0, 0, 0, 0, 0.0),
        ("2027-01-03", 0, 0, 0, 0, 0.0),
        # E1 api, E2 both, E3 and G1 export (E4, E5 too short); W1 from 22:00
        ("2027-01-04", 4, 1, 2, 1, 120.0),
        # E6, E7, E9; u1's W1 to 02:00 (W2 inside it adds nothing) + u2's V1 01:00-03:00
        ("2027-01-05", 3, 0, 3, 0, 240.0),
        # E15, E16 (item_type unknown), E17, G3 both; W3 is closed by I1
        ("2027-01-06", 4, 0, 3, 1, 0.0),
        # E19 both, E20-E22; W4 10:00-10:30:30 stays open: I2 starts after it, I3 is u2's
        ("2027-01-07", 4, 0, 3, 1, 30.5),
        ("2027-01-08", 1, 1, 0, 0, 0.0),  # E23, an API local file
    ]
    assert rows(engine, "coverage", start="2027-01-05", end="2027-01-05", user="u2") == [
        ("2027-01-05", 0, 0, 0, 0, 120.0)
    ]
    # u2's 2026 plays come from files without a `source` column: API plays.
    assert rows(engine, "coverage", start="2026-03-04", end="2026-03-04", user="u2") == [
        ("2026-03-04", 2, 2, 0, 0, 0.0)
    ]


def test_export_plays_count_by_name_in_the_music_queries(engine: DuckDBEngine) -> None:
    assert rows(engine, "top_artists", **EXPORT, user="u1") == [
        ("A1", "Aurora", 4, 10.83),  # T1: E1 (API: 3.0 min), E17, E19; T2: E2
        (None, "Lima", 4, 11.17),  # known by name only: E7, E9, E24, E25
        (None, "Juno", 3, 4.6),  # T8 has no credits: E3, E6 credit the play's artist; E22
        ("A2", "Boris", 1, 3.33),  # E2: 200,000 ms played, not T2's 240,000
        (None, "Boris", 1, 1.0),  # E21: the same name, but not A2
        ("A3", "Cleo", 1, 1.5),
        (None, "Me", 1, 1.5),  # E15, a local file in the export
    ]
    assert rows(engine, "top_albums", **EXPORT, user="u1", limit="4") == [
        ("AL3", "Greatest Hits", "Aurora", 3, 7.5),
        (None, "Juno Live", "Juno", 2, 3.6),  # T8's album, known by name only
        ("AL1", "Bravo Sessions", "Boris, Aurora", 1, 3.33),
        (None, "Charlie Single", "Cleo", 1, 1.5),  # T3 has no album; the export names one
    ]
    assert rows(engine, "daily_listening", start="2027-01-06", end="2027-01-08", user="u1") == [
        # E15 (local file), E16 (unknown: a play, but no track or artist), E17; not E13, E14
        ("2027-01-06", 3, 4.17, 2, 2),
        ("2027-01-07", 4, 6.33, 4, 4),  # E19, E20, E21, E22: two tracks named Intro
        ("2027-01-08", 1, 0.0, 0, 0),  # E23
    ]
    assert rows(engine, "discoveries", **EXPORT, user="u1") == [
        # Juno, Lima, Boris (by name), Me; T8, Kilo, both Intros, My Demo; plays E3, E6, E7,
        # E9, E15, E21, E22
        ("2027-01", 4, 5, 7),
        ("2027-02", 0, 1, 0),  # Mike is new, Lima is not
    ]
