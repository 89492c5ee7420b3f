"""A small curated lake, written by hand, for the named-query tests.

The files follow the transform's layout (`curated/<table>/<partition>=<date>/<name>.parquet`,
written with `tables.arrow_schema()`), so the queries read exactly what the pipeline writes.
Every expected row in tests/test_queries_results.py is worked out from the data below; the
queries of tests/test_queries_reference.py are also checked against answers computed in Python
from the same rows (`lake_files()`). The tests of the older queries use the range 03-01..03-04:
the plays outside it (February, 03-08, April, May) and the April dimensions are there for the
month boundaries of `discoveries` and the DST change of `weekday_hour`, and change nothing inside
that range.

Tracks (latest partition; `ms` = duration_ms, minutes in brackets), credits in credit order:
    T0 "Alpha"   120000 (2.0)    [A3]      album AL2
    T1 "Alpha"   180000 (3.0)    [A1]      album AL3
    T2 "Bravo"   240000 (4.0)    [A2, A1]  album AL1  credit order differs from name order
    T3 "Charlie"  90000 (1.5)    [A3]      no album
    T4 "Delta"   210000 (3.5)    [A3]      album AL4  03-01 said "Delta (demo)", 100000, [A2, A3],
                                                      album AL1
    T5 "Echo"     65432 (1.0905) [A2]      album AL1  minutes that need rounding
    T6 "Foxtrot" 150000 (2.5)    [A5, A2]  album AL5  (04-03 partition)
Albums (latest name): AL1 "Bravo Sessions" (03-01: "Bravo (demos)"), AL2 and AL3 both
"Greatest Hits", AL4 no album row at all (name unknown), AL5 "Foxtrot".
Artists (latest name; latest non-null genres):
    A1 "Aurora" [pop, synth]   (03-02 row has genres null: must not hide 03-01's)
    A2 "Boris"  [rock, pop]    (03-01: "Boris (old)", [rock])
    A3 "Cleo"   []             (03-03 row has genres null; [] from 03-01 means "none")
    A5 "Esme"   [folk]         (04-03 partition)

Plays (UTC), user u1:                       user u2:
    F1 02-27 21:00 T3                           Q1 03-01 10:00 T2
    F2 02-28 23:50 T5 (March 1 in Berlin)       Q2 03-02 13:30 T5
    P1 03-01 08:15 T1                           Q3 03-04 09:00 T0
    P2 03-01 08:45 T2                           Q4 03-04 09:05 T0
    P3 03-01 23:30 T3                           Q5 03-05 09:00 T1 (after the tested range)
    P4 03-02 00:10 T1                           R1 03-31 23:55 T4 (Tue; Wed in Asia/Kolkata)
    P5 03-02 12:00 (local file, no track id)    R2 04-01 00:05 T4
    P6 03-04 04:40 T4                           R3 04-02 10:00 (local file)
    P7 03-04 04:50 T2                           R4 04-03 12:00 T6
    D1 03-08 06:30 T1 (01:30 EST)               R5 05-01 10:00 (local file: a month, nothing new)
    D2 03-08 07:30 T2 (03:30 EDT: New York's DST starts 07:00 UTC that day)
    S1 04-05 08:00 T6
No plays on 03-03: a gap day. 2026-03-01 is a Sunday.
u1's 2026 plays are written as the transform writes API plays now (`source` api, `item_type`
track, the export's columns null); u2's 2026 plays are files from before the history export's
columns existed: five columns only (`OLD_PLAYS_COLUMNS`), so every query reads an old lake too.

January 2027 (2027-01-04 is a Monday): a history export met the API. `ms` = ms_played, `sk` =
skipped; a name in quotes is the export's own (track / artist / album). T8 is known only from
the export: no tracks row, no credits.
    user u1:
    E1  01-04 10:00 api    T1                                   (counted, 3.0 min)
    E2  01-04 10:05 both   T2   ms 200000 sk false
    E3  01-04 10:10 export T8 "India" / "Juno" / "Juno Live"  ms 185000
    E4  01-04 10:14 export T8 ms 12000 sk true                (short: skip only)
    E5  01-04 10:15 export T8 ms 0                             (short: skip only)
    E6  01-05 08:00 export T8 ms 31000 sk false
    E7  01-05 08:10 export no id "Kilo" / "Lima"  ms 240000
    E8  01-05 08:20 export no id "Kilo" / "Lima"  ms 29999     (short)
    E9  01-05 08:30 export no id "Kilo" / "Lima"  ms 30000 sk true (counted, and a skip)
    E10 01-05 09:00 episode EP1 "Ep one" of "The Daily"  ms 1800000
    E11 01-05 09:40 episode EP1 again                    ms 600000
    E12 01-05 10:00 episode EP2 "Ep two" of "The Daily"  ms 20000 (short)
    E13 01-06 07:00 audiobook CH1 "Chapter 1" of "Dune"  ms 2400000 (ties The Daily on minutes)
    E14 01-06 07:50 episode without id "Bonus" of "Radiolab"  ms 45000
    E15 01-06 12:00 export local file, no id "My Demo" / "Me"  ms 90000
    E16 01-06 12:05 export item_type unknown, no id, no names  ms 60000
    E17 01-06 13:00 export T1 ms 100000
    E18 01-06 13:05 export T1 ms 5000 sk true
    E19 01-07 13:10 both   T1 ms 170000 sk false
    E20 01-07 20:00 export T3 (no album) "Charlie" / "Cleo" / "Charlie Single"  ms 90000
    E21 01-07 20:05 export no id "Intro" / "Boris" / "Greatest Hits"  ms 60000 (not A2 Boris)
    E22 01-07 20:10 export no id "Intro" / "Juno" / "Greatest Hits"   ms 60000
    E23 01-08 23:30 api    local file (no id, no names)
    E24 02-01 09:00 export no id "Kilo" / "Lima"  ms 200000
    E25 02-02 09:00 export no id "Mike" / "Lima"  ms 200000
    user u2:
    G1  01-04 11:00 export T8 "India" / "Juno" / "Juno Live"  ms 200000
    G2  01-05 11:00 episode EP2 "Ep two" of "The Daily"  ms 1200000
    G3  01-06 11:00 both   T6 ms 150000 sk false
History gaps (possible gaps in the API's history) and imports (what an export covered):
    u1 W1 01-04 22:00 -> 01-05 02:00   open (spans midnight: 120 min on each date)
    u1 W2 01-05 01:00 -> 01-05 01:30   open, inside W1 (found by a later run): adds nothing
    u1 W3 01-06 10:00 -> 01-06 12:00   closed: import I1 of u1 covers it (last_ts = gap_to)
    u1 W4 01-07 10:00 -> 01-07 10:30:30 open: I2 starts after it; I3 covering it is u2's
    u2 V1 01-05 01:00 -> 01-05 03:00   open
    u2 V2 2026-12-31 23:00 -> 2027-01-01 00:30 open
    imports: I1 u1 2027-01-06 00:00 .. 01-06 12:00; I2 u1 2027-01-07 10:10 .. 01-31;
             I3 u2 2027-01-07 .. 01-31

Playlist PL1 of u1 (position: item):
    03-01 readable: 1 T1, 2 T2, 3 local "My Demo", 4 T3, 5 T2 again, 6 T5, 7 local "Old Demo"
    03-02 not readable (403): no items
    03-03 no snapshot
    03-04 readable: 1 T2, 2 (null item: no row), 3 local "My Demo", 4 T1, 5 T4, 6 T2 again,
                    7 local "New Demo"
Playlist PL1 of u2: 03-04 readable: 1 T5.

Top items of u1:
    artist short_term   03-01: 1 A1, 2 A2, 3 A3      03-03: 1 A3, 2 A1, 3 A4 (unknown artist)
    artist medium_term  03-02: 1 A2
    track short_term    03-01: 1 T1, 2 T2            03-03: 1 T4, 2 T1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chalicelib import layout
from chalicelib.tables import TABLES, arrow_schema

# The plays table's columns before the history export's were added (contract §4).
OLD_PLAYS_COLUMNS = ("user_id", "played_at", "track_id", "context_type", "context_uri")


def write_rows(
    lake: Path,
    table: str,
    partition_value: str,
    name: str,
    rows: Iterable[Mapping[str, Any]],
    columns: Iterable[str] | None = None,
) -> Path:
    """One curated Parquet file, as the transform writes it (declared schema, Hive path), or,
    given `columns`, as an older transform wrote it: those declared columns only."""
    spec = TABLES[table]
    path = lake / layout.curated_key(table, spec.partition.name, partition_value, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = arrow_schema(spec)
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), path)
    return path


def at(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00").replace(tzinfo=UTC)


def _track(track_id: str, name: str, duration_ms: int, album_id: str | None) -> dict[str, Any]:
    return {
        "track_id": track_id,
        "name": name,
        "album_id": album_id,
        "duration_ms": duration_ms,
        "explicit": False,
        "isrc": None,
        "disc_number": 1,
        "track_number": 1,
    }


def _album(album_id: str, name: str) -> dict[str, Any]:
    return {
        "album_id": album_id,
        "name": name,
        "album_type": "album",
        "release_date": "2020",
        "release_date_precision": "year",
        "release_year": 2020,
        "total_tracks": 10,
    }


def _credits(track_id: str, *artist_ids: str) -> list[dict[str, Any]]:
    return [
        {"track_id": track_id, "artist_id": artist_id, "artist_position": position}
        for position, artist_id in enumerate(artist_ids, start=1)
    ]


def _play(user: str, day: str, clock: str, track_id: str | None) -> dict[str, Any]:
    """An API play as a file from before the export's columns holds it (u2's 2026 plays)."""
    return {
        "user_id": user,
        "played_at": at(day, clock),
        "track_id": track_id,
        "context_type": None,
        "context_uri": None,
    }


def _api_play(user: str, day: str, clock: str, track_id: str | None) -> dict[str, Any]:
    """An API play as the transform writes it now."""
    return {**_play(user, day, clock, track_id), "source": "api", "item_type": "track"}


def _export_play(
    user: str,
    day: str,
    clock: str,
    track_id: str | None,
    ms_played: int,
    *,
    source: str = "export",
    item_type: str = "track",
    names: tuple[str | None, str | None, str | None] = (None, None, None),
    skipped: bool | None = None,
    episode: tuple[str | None, str | None, str | None] = (None, None, None),
) -> dict[str, Any]:
    """A play a history export knows (`source` export or both): `names` are its track, artist
    and album names, `episode` its episode id, episode name and show name."""
    track_name, artist_name, album_name = names
    episode_id, episode_name, show_name = episode
    return {
        **_play(user, day, clock, track_id),
        "source": source,
        "item_type": item_type,
        "episode_id": episode_id,
        "ms_played": ms_played,
        "reason_start": "clickrow",
        "reason_end": "trackdone",
        "skipped": skipped,
        "shuffle": False,
        "offline": False,
        "incognito": False,
        "platform": "linux",
        "conn_country": "DE",
        "track_name": track_name,
        "artist_name": artist_name,
        "album_name": album_name,
        "episode_name": episode_name,
        "show_name": show_name,
    }


def _export_world() -> list[dict[str, Any]]:
    """The plays of January and February 2027 (module docstring)."""
    india = ("India", "Juno", "Juno Live")
    kilo = ("Kilo", "Lima", None)
    bravo = ("Bravo", "Boris", "Bravo Sessions")
    alpha = ("Alpha", "Aurora", "Greatest Hits")
    day1, day2, day3, day4 = "2027-01-04", "2027-01-05", "2027-01-06", "2027-01-07"
    return [
        _api_play("u1", day1, "10:00", "T1"),
        _export_play("u1", day1, "10:05", "T2", 200000, source="both", names=bravo,
                     skipped=False),
        _export_play("u1", day1, "10:10", "T8", 185000, names=india),
        _export_play("u1", day1, "10:14", "T8", 12000, names=india, skipped=True),
        _export_play("u1", day1, "10:15", "T8", 0, names=india),
        _export_play("u1", day2, "08:00", "T8", 31000, names=india, skipped=False),
        _export_play("u1", day2, "08:10", None, 240000, names=kilo),
        _export_play("u1", day2, "08:20", None, 29999, names=kilo),
        _export_play("u1", day2, "08:30", None, 30000, names=kilo, skipped=True),
        _export_play("u1", day2, "09:00", None, 1800000, item_type="episode",
                     episode=("EP1", "Ep one", "The Daily")),
        _export_play("u1", day2, "09:40", None, 600000, item_type="episode",
                     episode=("EP1", "Ep one", "The Daily")),
        _export_play("u1", day2, "10:00", None, 20000, item_type="episode",
                     episode=("EP2", "Ep two", "The Daily")),
        _export_play("u1", day3, "07:00", None, 2400000, item_type="audiobook",
                     episode=("CH1", "Chapter 1", "Dune")),
        _export_play("u1", day3, "07:50", None, 45000, item_type="episode",
                     episode=(None, "Bonus", "Radiolab")),
        _export_play("u1", day3, "12:00", None, 90000, names=("My Demo", "Me", None)),
        _export_play("u1", day3, "12:05", None, 60000, item_type="unknown"),
        _export_play("u1", day3, "13:00", "T1", 100000, names=alpha),
        _export_play("u1", day3, "13:05", "T1", 5000, names=alpha, skipped=True),
        _export_play("u1", day4, "13:10", "T1", 170000, source="both", names=alpha,
                     skipped=False),
        _export_play("u1", day4, "20:00", "T3", 90000, names=("Charlie", "Cleo", "Charlie Single")),
        _export_play("u1", day4, "20:05", None, 60000, names=("Intro", "Boris", "Greatest Hits")),
        _export_play("u1", day4, "20:10", None, 60000, names=("Intro", "Juno", "Greatest Hits")),
        _api_play("u1", "2027-01-08", "23:30", None),
        _export_play("u1", "2027-02-01", "09:00", None, 200000, names=kilo),
        _export_play("u1", "2027-02-02", "09:00", None, 200000, names=("Mike", "Lima", None)),
        _export_play("u2", day1, "11:00", "T8", 200000, names=india),
        _export_play("u2", day2, "11:00", None, 1200000, item_type="episode",
                     episode=("EP2", "Ep two", "The Daily")),
        _export_play("u2", day3, "11:00", "T6", 150000, source="both",
                     names=("Foxtrot", "Esme", "Foxtrot"), skipped=False),
    ]  # fmt: skip


def _gap(user: str, start: str, end: str) -> dict[str, Any]:
    return {
        "user_id": user,
        "gap_from": datetime.fromisoformat(start).replace(tzinfo=UTC),
        "gap_to": datetime.fromisoformat(end).replace(tzinfo=UTC),
        "run_id": f"run-{start}",
    }


def _import(user: str, import_id: str, first: str, last: str) -> dict[str, Any]:
    return {
        "user_id": user,
        "import_id": import_id,
        "file_name": "Streaming_History_Audio_2026-2027_0.json",
        "format": "extended",
        "rows": 100,
        "first_ts": datetime.fromisoformat(first).replace(tzinfo=UTC),
        "last_ts": datetime.fromisoformat(last).replace(tzinfo=UTC),
    }


def _item(position: int, item_id: str | None, name: str) -> dict[str, Any]:
    return {
        "user_id": "u1",
        "playlist_id": "PL1",
        "position": position,
        "item_type": "local" if item_id is None else "track",
        "item_id": item_id,
        "item_name": name,
        "added_at": None,
        "added_by": None,
    }


def _playlist(user: str, readable: bool) -> dict[str, Any]:
    return {
        "user_id": user,
        "playlist_id": "PL1",
        "name": "Road trip",
        "owner_id": "u1",
        "collaborative": user != "u1",
        "public": False,
        "snapshot_id": None,
        "item_count": 7,
        "items_readable": readable,
    }


def _top(item_type: str, time_range: str, *item_ids: str) -> list[dict[str, Any]]:
    return [
        {
            "user_id": "u1",
            "item_type": item_type,
            "time_range": time_range,
            "rank": rank,
            "item_id": item_id,
        }
        for rank, item_id in enumerate(item_ids, start=1)
    ]


def lake_files() -> list[tuple[str, str, str, list[dict[str, Any]]]]:
    """Every file of the lake described in the module docstring: (table, partition value, file
    name, rows). `build_lake` writes them; tests that work answers out in Python read them."""
    files: list[tuple[str, str, str, list[dict[str, Any]]]] = [
        ("tracks", "2026-03-01", "part", [
            _track("T1", "Alpha", 180000, "AL3"),
            _track("T2", "Bravo", 240000, "AL1"),
            _track("T3", "Charlie", 90000, None),
            _track("T4", "Delta (demo)", 100000, "AL1"),
        ]),
        ("tracks", "2026-03-02", "part", [
            _track("T1", "Alpha", 180000, "AL3"),
            _track("T5", "Echo", 65432, "AL1"),
            _track("T0", "Alpha", 120000, "AL2"),
        ]),
        ("tracks", "2026-03-03", "part", [_track("T4", "Delta", 210000, "AL4")]),
        ("tracks", "2026-04-03", "part", [_track("T6", "Foxtrot", 150000, "AL5")]),
        ("track_artists", "2026-03-01", "part", [
            *_credits("T1", "A1"),
            *_credits("T2", "A2", "A1"),
            *_credits("T3", "A3"),
            *_credits("T4", "A2", "A3"),
        ]),
        ("track_artists", "2026-03-02", "part", [
            *_credits("T1", "A1"),
            *_credits("T5", "A2"),
            *_credits("T0", "A3"),
        ]),
        ("track_artists", "2026-03-03", "part", _credits("T4", "A3")),
        ("track_artists", "2026-04-03", "part", _credits("T6", "A5", "A2")),
        ("artists", "2026-03-01", "part", [
            {"artist_id": "A1", "name": "Aurora", "genres": ["pop", "synth"]},
            {"artist_id": "A2", "name": "Boris (old)", "genres": ["rock"]},
            {"artist_id": "A3", "name": "Cleo", "genres": []},
        ]),
        ("artists", "2026-03-02", "part", [
            {"artist_id": "A1", "name": "Aurora", "genres": None},
            {"artist_id": "A2", "name": "Boris", "genres": None},
        ]),
        ("artists", "2026-03-03", "part", [
            {"artist_id": "A2", "name": "Boris", "genres": ["rock", "pop"]},
            {"artist_id": "A3", "name": "Cleo", "genres": None},
        ]),
        ("artists", "2026-04-03", "part", [
            {"artist_id": "A5", "name": "Esme", "genres": ["folk"]},
        ]),
        ("albums", "2026-03-01", "part", [
            _album("AL1", "Bravo (demos)"),
            _album("AL2", "Greatest Hits"),
            _album("AL3", "Greatest Hits"),
        ]),
        ("albums", "2026-03-02", "part", [_album("AL1", "Bravo Sessions")]),
        ("albums", "2026-04-03", "part", [_album("AL5", "Foxtrot")]),
    ]  # fmt: skip

    plays = [
        _api_play("u1", "2026-02-27", "21:00", "T3"),
        _api_play("u1", "2026-02-28", "23:50", "T5"),
        _api_play("u1", "2026-03-01", "08:15", "T1"),
        _api_play("u1", "2026-03-01", "08:45", "T2"),
        _api_play("u1", "2026-03-01", "23:30", "T3"),
        _api_play("u1", "2026-03-02", "00:10", "T1"),
        _api_play("u1", "2026-03-02", "12:00", None),
        _api_play("u1", "2026-03-04", "04:40", "T4"),
        _api_play("u1", "2026-03-04", "04:50", "T2"),
        _api_play("u1", "2026-03-08", "06:30", "T1"),
        _api_play("u1", "2026-03-08", "07:30", "T2"),
        _api_play("u1", "2026-04-05", "08:00", "T6"),
        _play("u2", "2026-03-01", "10:00", "T2"),
        _play("u2", "2026-03-02", "13:30", "T5"),
        _play("u2", "2026-03-04", "09:00", "T0"),
        _play("u2", "2026-03-04", "09:05", "T0"),
        _play("u2", "2026-03-05", "09:00", "T1"),
        _play("u2", "2026-03-31", "23:55", "T4"),
        _play("u2", "2026-04-01", "00:05", "T4"),
        _play("u2", "2026-04-02", "10:00", None),
        _play("u2", "2026-04-03", "12:00", "T6"),
        _play("u2", "2026-05-01", "10:00", None),
        *_export_world(),
    ]
    for user in ("u1", "u2"):
        for day in sorted({p["played_at"].date() for p in plays if p["user_id"] == user}):
            files.append(("plays", day.isoformat(), layout.encode(user), [
                p for p in plays if p["user_id"] == user and p["played_at"].date() == day
            ]))  # fmt: skip

    files += [
        ("history_gaps", "2027-01-05", "u1", [
            _gap("u1", "2027-01-04T22:00:00", "2027-01-05T02:00:00"),
        ]),
        ("history_gaps", "2027-01-06", "u1", [
            _gap("u1", "2027-01-05T01:00:00", "2027-01-05T01:30:00"),
            _gap("u1", "2027-01-06T10:00:00", "2027-01-06T12:00:00"),
        ]),
        ("history_gaps", "2027-01-08", "u1", [
            _gap("u1", "2027-01-07T10:00:00", "2027-01-07T10:30:30"),
        ]),
        ("history_gaps", "2027-01-01", "u2", [
            _gap("u2", "2026-12-31T23:00:00", "2027-01-01T00:30:00"),
        ]),
        ("history_gaps", "2027-01-05", "u2", [
            _gap("u2", "2027-01-05T01:00:00", "2027-01-05T03:00:00"),
        ]),
        ("imports", "2027-01-10", "u1", [
            _import("u1", "I1", "2027-01-06T00:00:00", "2027-01-06T12:00:00"),
            _import("u1", "I2", "2027-01-07T10:10:00", "2027-01-31T00:00:00"),
        ]),
        ("imports", "2027-01-10", "u2", [
            _import("u2", "I3", "2027-01-07T00:00:00", "2027-01-31T00:00:00"),
        ]),
        ("playlists", "2026-03-01", "u1", [_playlist("u1", True)]),
        ("playlists", "2026-03-02", "u1", [_playlist("u1", False)]),
        ("playlists", "2026-03-04", "u1", [_playlist("u1", True)]),
        ("playlists", "2026-03-04", "u2", [_playlist("u2", True)]),
        ("playlist_items", "2026-03-01", "u1", [
            _item(1, "T1", "Alpha"),
            _item(2, "T2", "Bravo"),
            _item(3, None, "My Demo"),
            _item(4, "T3", "Charlie"),
            _item(5, "T2", "Bravo"),
            _item(6, "T5", "Echo"),
            _item(7, None, "Old Demo"),
        ]),
        ("playlist_items", "2026-03-04", "u1", [
            _item(1, "T2", "Bravo"),
            _item(3, None, "My Demo"),
            _item(4, "T1", "Alpha"),
            _item(5, "T4", "Delta"),
            _item(6, "T2", "Bravo"),
            _item(7, None, "New Demo"),
        ]),
        ("playlist_items", "2026-03-04", "u2", [{**_item(1, "T5", "Echo"), "user_id": "u2"}]),
        ("top_items", "2026-03-01", "u1", [
            *_top("artist", "short_term", "A1", "A2", "A3"),
            *_top("track", "short_term", "T1", "T2"),
        ]),
        ("top_items", "2026-03-02", "u1", _top("artist", "medium_term", "A2")),
        ("top_items", "2026-03-03", "u1", [
            *_top("artist", "short_term", "A3", "A1", "A4"),
            *_top("track", "short_term", "T4", "T1"),
        ]),
    ]  # fmt: skip
    return files


def build_lake(lake: Path) -> Path:
    """Write the lake described in the module docstring under `lake`; returns `lake`."""
    for table, partition_value, name, rows in lake_files():
        old = table == "plays" and not any("source" in row for row in rows)
        write_rows(lake, table, partition_value, name, rows, OLD_PLAYS_COLUMNS if old else None)
    return lake
