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


def write_rows(
    lake: Path, table: str, partition_value: str, name: str, rows: Iterable[Mapping[str, Any]]
) -> Path:
    """One curated Parquet file, as the transform writes it (declared schema, Hive path)."""
    spec = TABLES[table]
    path = lake / layout.curated_key(table, spec.partition.name, partition_value, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(list(rows), schema=arrow_schema(spec)), path)
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
    return {
        "user_id": user,
        "played_at": at(day, clock),
        "track_id": track_id,
        "context_type": None,
        "context_uri": None,
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
        _play("u1", "2026-02-27", "21:00", "T3"),
        _play("u1", "2026-02-28", "23:50", "T5"),
        _play("u1", "2026-03-01", "08:15", "T1"),
        _play("u1", "2026-03-01", "08:45", "T2"),
        _play("u1", "2026-03-01", "23:30", "T3"),
        _play("u1", "2026-03-02", "00:10", "T1"),
        _play("u1", "2026-03-02", "12:00", None),
        _play("u1", "2026-03-04", "04:40", "T4"),
        _play("u1", "2026-03-04", "04:50", "T2"),
        _play("u1", "2026-03-08", "06:30", "T1"),
        _play("u1", "2026-03-08", "07:30", "T2"),
        _play("u1", "2026-04-05", "08:00", "T6"),
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
    ]
    for user in ("u1", "u2"):
        for day in sorted({p["played_at"].date() for p in plays if p["user_id"] == user}):
            files.append(("plays", day.isoformat(), layout.encode(user), [
                p for p in plays if p["user_id"] == user and p["played_at"].date() == day
            ]))  # fmt: skip

    files += [
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
        write_rows(lake, table, partition_value, name, rows)
    return lake
