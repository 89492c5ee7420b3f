"""`spotify-etl import-history` (contract §8): Spotify's data download into a local lake, every
odd input the issue names, matching with API plays, and any order giving the same table."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

import duckdb
import pytest

from chalicelib import layout
from chalicelib.storage import LocalStorage, get_json
from chalicelib.transform import handler
from spotify_etl.cli import main
from tests import transform_fixtures as fx

USER = "alice"
IMPORT_AT = "2026-03-05T12:00:00Z"
EXT_DIR = "Spotify Extended Streaming History"
ACC_DIR = "Spotify Account Data"
NETWORK = {
    "ip_addr": "203.0.113.9",
    "ip_addr_decrypted": "203.0.113.10",
    "user_agent_decrypted": "Mozilla/5.0 secret-agent",
    "username": "alice-login",
}


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lake"
    monkeypatch.setenv("LAKE_URI", str(root))
    for name in ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET", "SPOTIFY_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return root


def ext(ts: str, track: str | None, ms: int = 200_000, **fields: Any) -> dict[str, Any]:
    return fx.extended_row(ts, track, ms, **NETWORK, **fields)


def episode_row(ts: str, ms: int = 1_200_000) -> dict[str, Any]:
    return ext(ts, None, ms, track_name=None, artist_name=None, album_name=None,
               episode_name="Ep 1", episode_show_name="The Show",
               spotify_episode_uri="spotify:episode:ep1")  # fmt: skip


def audiobook_row(ts: str) -> dict[str, Any]:
    book = {
        "audiobook_title": "A Book",
        "audiobook_uri": "spotify:audiobook:b1",
        "audiobook_chapter_uri": "spotify:chapter:c1",
        "audiobook_chapter_title": "Chapter 1",
    }
    return ext(ts, None, 900_000, track_name=None, artist_name=None, album_name=None, **book)


def music_row(end: str, artist: str, track: str, ms: int = 200_000) -> dict[str, Any]:
    """A row of account data's music history: to the minute, names only."""
    return {"endTime": end, "artistName": artist, "trackName": track, "msPlayed": ms}


def write_zip(path: Path, files: dict[str, Any]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            archive.writestr(name, data)
    return path


def run_import(*argv: str, at: str = IMPORT_AT) -> int:
    return main(["import-history", *argv, "--user", USER, "--at", at])


def plays(lake: Path) -> list[dict[str, Any]]:
    files = list((lake / "curated/plays").glob("*/*.parquet"))
    if not files:
        return []
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        table = con.sql(
            f"SELECT * FROM read_parquet('{lake}/curated/plays/*/*.parquet', "
            "hive_partitioning=true, union_by_name=true) ORDER BY played_at"
        ).to_arrow_table()
    return table.to_pylist()


def brief(lake: Path) -> list[tuple[str, str | None, str, int | None]]:
    return [
        (layout.iso(row["played_at"]), row["track_id"], row["source"], row["ms_played"])
        for row in plays(lake)
    ]


def land_polls(lake: Path, envelopes: list[dict[str, Any]]) -> None:
    storage = LocalStorage(lake)
    for env in envelopes:
        handler.transform_object(storage, fx.put_raw(storage, env))


def api_poll(run_at: str, played: list[tuple[Any, str]], **extras: Any) -> dict[str, Any]:
    return fx.plays_envelope(run_at, [fx.play(track, at) for track, at in played], **extras)


# --- the download's shapes ----------------------------------------------------------------


def test_a_zip_with_both_formats_and_video_files(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zipped = write_zip(
        tmp_path / "my_spotify_data.zip",
        {
            f"{EXT_DIR}/Streaming_History_Audio_2025_0.json": [
                ext("2025-06-01T10:00:00Z", "t1"),
                ext("2025-06-01T11:00:00Z", "t2", ms=0),
                episode_row("2025-06-02T08:00:00Z"),
                audiobook_row("2025-06-02T09:00:00Z"),
            ],
            f"{EXT_DIR}/Streaming_History_Video_2025.json": [{"ts": "2025-06-01T12:00:00Z"}],
            f"{EXT_DIR}/ReadMeFirst_ExtendedStreamingHistory.pdf": b"%PDF-1.4",
            f"{ACC_DIR}/StreamingHistory_music_0.json": [
                {"endTime": "2025-07-01 10:03", "artistName": "A", "trackName": "S",
                 "msPlayed": 120_000},
            ],
            f"{ACC_DIR}/StreamingHistory_podcast_0.json": [
                {"endTime": "2025-07-01 11:00", "podcastName": "Pod", "episodeName": "E2",
                 "msPlayed": 600_000},
            ],
            f"{ACC_DIR}/Userdata.json": {"username": "alice-login"},
        },
    )  # fmt: skip
    assert run_import(str(zipped)) == 0
    out = capsys.readouterr().out
    assert "skipped Spotify Extended Streaming History/Streaming_History_Video_2025.json" in out
    assert "skipped Spotify Account Data/Userdata.json" in out
    assert "6 new plays" in out
    rows = {layout.iso(r["played_at"]): r for r in plays(lake)}
    assert [r["item_type"] for r in rows.values()] == [
        "track", "track", "episode", "audiobook", "track", "episode",
    ]  # fmt: skip
    ms_zero = rows["2025-06-01T11:00:00.000Z"]
    assert (ms_zero["ms_played"], ms_zero["source"], ms_zero["track_id"]) == (0, "export", "t2")
    show = rows["2025-06-02T08:00:00.000Z"]
    assert (show["episode_id"], show["show_name"], show["track_id"]) == ("ep1", "The Show", None)
    book = rows["2025-06-02T09:00:00.000Z"]
    assert (book["show_name"], book["episode_name"]) == ("A Book", "Chapter 1")
    account = rows["2025-07-01T10:03:00.000Z"]
    assert (account["track_name"], account["artist_name"], account["ms_played"]) == (
        "S", "A", 120_000,
    )  # fmt: skip
    imports = duckdb.sql(
        f"SELECT file_name, format, rows, first_ts FROM read_parquet('{lake}/curated/imports/*/*"
        ".parquet') ORDER BY file_name"
    ).fetchall()
    assert [(f.rsplit("/", 1)[1], fmt, n) for f, fmt, n, _ in imports] == [
        ("StreamingHistory_music_0.json", "account", 1),
        ("StreamingHistory_podcast_0.json", "account", 1),
        ("Streaming_History_Audio_2025_0.json", "extended", 4),
    ]


def test_network_identifiers_never_reach_the_lake(lake: Path, tmp_path: Path) -> None:
    path = tmp_path / "endsong_0.json"  # the older exports' name
    path.write_text(json.dumps([ext("2020-01-01T10:00:00Z", "t1")]))
    assert run_import(str(path)) == 0
    everything = b""
    for file in lake.rglob("*"):
        if file.is_file() and not file.name.startswith("."):
            data = file.read_bytes()
            everything += gzip.decompress(data) if file.name.endswith(".gz") else data
    for value in NETWORK.values():
        assert value.encode() not in everything
    for name in NETWORK:
        assert f'"{name}"'.encode() not in everything
    assert [r[:3] for r in brief(lake)] == [("2020-01-01T10:00:00.000Z", "t1", "export")]


def test_skipped_null_and_offline_timestamps_in_seconds_and_milliseconds(
    lake: Path, tmp_path: Path
) -> None:
    path = tmp_path / "Streaming_History_Audio_2024_0.json"
    path.write_text(json.dumps([
        ext("2024-01-01T10:00:00Z", "t1", skipped=None, offline=True, offline_timestamp=1704103000),
        ext("2024-01-01T11:00:00Z", "t2", skipped=True, offline=True,
            offline_timestamp=1704106600123),
    ]))  # fmt: skip
    assert run_import(str(path)) == 0
    rows = plays(lake)
    assert [(r["skipped"], r["offline"]) for r in rows] == [(None, True), (True, True)]


def test_the_same_row_in_two_files_and_two_rows_with_one_ts(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = ext("2024-02-01T10:00:00Z", "t1")
    first = tmp_path / "Streaming_History_Audio_2024_0.json"
    first.write_text(json.dumps([shared, ext("2024-02-01T11:00:00Z", "t2", ms=10_000)]))
    second = tmp_path / "Streaming_History_Audio_2024_1.json"
    second.write_text(json.dumps([
        shared,
        ext("2024-02-01T11:00:00Z", "t3", ms=50_000),  # same ts: the longer play wins
        ext("2024-02-01T12:00:00Z", "tb", ms=5_000),  # same ts and ms: the first URI wins
        ext("2024-02-01T12:00:00Z", "ta", ms=5_000),
    ]))  # fmt: skip
    assert run_import(str(first), str(second)) == 0
    assert [r[:2] for r in brief(lake)] == [
        ("2024-02-01T10:00:00.000Z", "t1"),
        ("2024-02-01T11:00:00.000Z", "t3"),
        ("2024-02-01T12:00:00.000Z", "ta"),
    ]
    assert "3 new plays, 0 matched to API plays, 3 duplicates" in capsys.readouterr().out


# --- matching with API plays --------------------------------------------------------------


def test_export_rows_pair_one_to_one_with_api_plays(lake: Path, tmp_path: Path) -> None:
    # The API says `played_at` at the start of one play and at the end of another.
    land_polls(lake, [api_poll("2026-03-02T12:00:00Z", [
        (fx.T1, "2026-03-02T10:00:00.250Z"),  # start: the export row ends 200 s later
        (fx.T2, "2026-03-02T11:00:00.100Z"),  # end: the export row ends 30 s later
        (fx.T1, "2026-03-02T11:30:00.000Z"),  # no export row near it
    ])])  # fmt: skip
    path = tmp_path / "Streaming_History_Audio_2026_0.json"
    path.write_text(json.dumps([
        ext("2026-03-02T10:03:20Z", "t1", ms=200_000),
        # The same track repeated right after: its start is 200 s after the API's play.
        ext("2026-03-02T10:06:40Z", "t1", ms=200_000),
        ext("2026-03-02T11:00:30Z", "t2", ms=180_000),
        ext("2026-03-02T11:00:40Z", "t3", ms=180_000),  # another track: never paired
    ]))  # fmt: skip
    assert run_import(str(path)) == 0
    assert brief(lake) == [
        ("2026-03-02T10:00:00.250Z", "t1", "both", 200_000),
        ("2026-03-02T10:06:40.000Z", "t1", "export", 200_000),
        ("2026-03-02T11:00:00.100Z", "t2", "both", 180_000),
        ("2026-03-02T11:00:40.000Z", "t3", "export", 180_000),
        ("2026-03-02T11:30:00.000Z", "t1", "api", None),
    ]
    both = plays(lake)[0]
    assert (both["context_type"], both["track_name"], both["conn_country"]) == (
        None, "Track t1", "SE",
    )  # fmt: skip


def test_the_nearer_of_two_rows_pairs_and_ties_go_to_the_earlier_ts(
    lake: Path, tmp_path: Path
) -> None:
    land_polls(lake, [api_poll("2026-03-02T12:00:00Z", [(fx.T1, "2026-03-02T10:00:00.000Z")])])
    path = tmp_path / "Streaming_History_Audio_2026_0.json"
    path.write_text(json.dumps([
        ext("2026-03-02T09:59:20Z", "t1", ms=10_000_000),  # 40 s before
        ext("2026-03-02T10:00:40Z", "t1", ms=10_000_000),  # 40 s after: a tie, later ts
    ]))  # fmt: skip
    assert run_import(str(path)) == 0
    assert [r[:3] for r in brief(lake)] == [
        ("2026-03-02T10:00:00.000Z", "t1", "both"),
        ("2026-03-02T10:00:40.000Z", "t1", "export"),
    ]


def test_a_pair_across_midnight(lake: Path, tmp_path: Path) -> None:
    path = tmp_path / "Streaming_History_Audio_2026_0.json"
    path.write_text(json.dumps([ext("2026-03-03T00:01:00Z", "t1", ms=200_000)]))
    assert run_import(str(path)) == 0
    land_polls(lake, [api_poll("2026-03-03T06:00:00Z", [(fx.T1, "2026-03-02T23:57:40.000Z")])])
    assert brief(lake) == [("2026-03-02T23:57:40.000Z", "t1", "both", 200_000)]
    assert {r["played_date"].isoformat() for r in plays(lake)} == {"2026-03-02"}


def test_account_rows_take_a_track_id_only_from_exactly_one_known_track(
    lake: Path, tmp_path: Path
) -> None:
    twin = fx.track("t7", "Twin", fx.ALB1, [fx.artist("ar9", "Artist One")])
    twin_again = fx.track("t8", "Twin", fx.ALB2, [fx.artist("ar9", "Artist One")])
    land_polls(lake, [api_poll("2026-03-01T12:00:00Z", [
        (fx.T1, "2026-03-01T10:00:00Z"), (twin, "2026-03-01T10:10:00Z"),
        (twin_again, "2026-03-01T10:20:00Z"),
    ])])  # fmt: skip
    t1_name = fx.T1["name"]
    t1_artist = fx.T1["artists"][0]["name"]
    path = tmp_path / "StreamingHistory_music_0.json"
    path.write_text(json.dumps([
        {"endTime": "2025-01-01 10:00", "artistName": t1_artist, "trackName": t1_name,
         "msPlayed": 100_000},
        {"endTime": "2025-01-01 11:00", "artistName": "Artist One", "trackName": "Twin",
         "msPlayed": 100_000},  # two known tracks: none
        {"endTime": "2025-01-01 12:00", "artistName": "Nobody", "trackName": "Nothing",
         "msPlayed": 100_000},  # no known track: none
    ]))  # fmt: skip
    assert run_import(str(path)) == 0
    imported = [r for r in plays(lake) if r["source"] == "export"]
    assert [(r["track_id"], r["track_name"]) for r in imported] == [
        ("t1", t1_name), (None, "Twin"), (None, "Nothing"),
    ]  # fmt: skip


# --- any order, any number of times: the same table ----------------------------------------


def _export_files(tmp_path: Path) -> tuple[Path, Path]:
    """Two overlapping exports: the second repeats part of the first and adds more."""
    rows = [
        ext("2026-03-01T09:00:00Z", "t1"),
        ext("2026-03-02T10:03:20Z", "t1", ms=200_000),  # pairs with a poll's play
        ext("2026-03-02T13:00:00Z", "t2", ms=20_000),  # inside the gap the polls left
        episode_row("2026-03-02T14:00:00Z"),
    ]
    first = tmp_path / "a" / "Streaming_History_Audio_2026_0.json"
    second = tmp_path / "b" / "Streaming_History_Audio_2026_0.json"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_text(json.dumps(rows[:3]))
    second.write_text(json.dumps([*rows[1:], ext("2026-03-03T09:00:00Z", "t3")]))
    return first, second


def _polls() -> list[dict[str, Any]]:
    return [
        api_poll("2026-03-02T12:00:00Z", [(fx.T1, "2026-03-02T10:00:00.250Z")]),
        api_poll(
            "2026-03-03T12:00:00Z",
            [(fx.T2, "2026-03-03T10:00:00.000Z")],
            watermark="2026-03-02T10:00:00.250Z",
        ),
    ]


def test_any_order_of_polls_and_imports_and_reprocess_give_one_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _export_files(tmp_path)
    tables = []
    for order in ("polls first", "imports first", "interleaved"):
        lake = tmp_path / order.replace(" ", "_")
        monkeypatch.setenv("LAKE_URI", str(lake))
        polls = _polls()
        if order == "polls first":
            land_polls(lake, polls)
            assert run_import(str(first)) == 0
            assert run_import(str(second), at="2026-03-06T12:00:00Z") == 0
        elif order == "imports first":
            assert run_import(str(second)) == 0
            assert run_import(str(first), at="2026-03-06T12:00:00Z") == 0
            land_polls(lake, polls[::-1])
        else:
            land_polls(lake, polls[1:])
            assert run_import(str(first)) == 0
            land_polls(lake, polls[:1])
            assert run_import(str(second)) == 0
            assert run_import(str(first), at="2026-03-07T12:00:00Z") == 0  # again
        tables.append(plays(lake))
    assert tables[0] == tables[1] == tables[2]
    assert [(layout.iso(r["played_at"]), r["source"]) for r in tables[0]] == [
        ("2026-03-01T09:00:00.000Z", "export"),
        ("2026-03-02T10:00:00.250Z", "both"),
        ("2026-03-02T13:00:00.000Z", "export"),
        ("2026-03-02T14:00:00.000Z", "export"),
        ("2026-03-03T09:00:00.000Z", "export"),
        ("2026-03-03T10:00:00.000Z", "api"),
    ]
    storage = LocalStorage(tmp_path / "interleaved")
    summary = handler.reprocess(storage)
    assert summary.get("quarantined", 0) == 0 and summary["objects"] == 5
    assert plays(tmp_path / "interleaved") == tables[0]
    gaps = duckdb.sql(
        f"SELECT user_id, gap_from, gap_to FROM read_parquet('{tmp_path}/interleaved/curated/"
        "history_gaps/*/*.parquet')"
    ).fetchall()
    assert [(u, layout.iso(a), layout.iso(b)) for u, a, b in gaps] == [
        (USER, "2026-03-02T10:00:00.250Z", "2026-03-03T10:00:00.000Z")
    ]


def test_a_lake_written_before_the_export_columns_keeps_working(lake: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    old = lake / "curated/plays/played_date=2026-03-02/alice.parquet"
    old.parent.mkdir(parents=True)
    moment = layout.parse_iso("2026-03-02T10:00:00.250Z")
    schema = pa.schema([("user_id", pa.string()), ("played_at", pa.timestamp("ms", tz="UTC")),
                        ("track_id", pa.string()), ("context_type", pa.string()),
                        ("context_uri", pa.string())])  # fmt: skip
    pq.write_table(pa.Table.from_pylist([{"user_id": USER, "played_at": moment, "track_id": "t1",
                   "context_type": None, "context_uri": None}], schema=schema), old)  # fmt: skip
    path = tmp_path / "Streaming_History_Audio_2026_0.json"
    path.write_text(json.dumps([ext("2026-03-02T10:03:20Z", "t1", ms=200_000),
                                ext("2026-03-02T12:00:00Z", "t2")]))  # fmt: skip
    assert run_import(str(path)) == 0
    assert brief(lake) == [
        ("2026-03-02T10:00:00.250Z", "t1", "both", 200_000),
        ("2026-03-02T12:00:00.000Z", "t2", "export", 200_000),
    ]


# --- bad input: a clear error, nothing changed ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"hello", "neither a zip nor a JSON file"),
        ("Streaming_History_Audio_2024_0.json", b'{"ts": 1}', "expected a JSON array"),
        ("Streaming_History_Audio_2024_0.json", b'[{"id": 1}]', "not a streaming history"),
        ("Streaming_History_Audio_2024_0.json", b"[1, 2]", "array of objects"),
    ],
)
def test_input_that_is_not_an_export_is_refused_before_upload(
    lake: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    message: str,
) -> None:
    good = tmp_path / "Streaming_History_Audio_2023_0.json"
    good.write_text(json.dumps([ext("2023-01-01T10:00:00Z", "t1")]))
    bad = tmp_path / name
    bad.write_bytes(content)
    assert run_import(str(good), str(bad)) == 2
    assert message in capsys.readouterr().err
    assert not lake.exists() or not any(lake.rglob("*.gz"))


def test_an_empty_zip_a_zip_without_history_and_a_bad_user_are_refused(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = write_zip(tmp_path / "empty.zip", {})
    assert run_import(str(empty)) == 2
    assert "the zip is empty" in capsys.readouterr().err
    other = write_zip(tmp_path / "other.zip", {"Spotify Account Data/Userdata.json": {}})
    assert run_import(str(other)) == 2
    assert "no streaming history files" in capsys.readouterr().err
    good = tmp_path / "endsong_1.json"
    good.write_text("[]")
    assert main(["import-history", str(good), "--user", "not a user/../x"]) == 2
    assert "is not a user id" in capsys.readouterr().err
    assert main(["import-history", str(tmp_path / "missing.zip"), "--user", USER]) == 2
    assert not lake.exists() or not any(lake.rglob("*.gz"))


def test_a_raw_export_object_of_another_shape_is_quarantined_with_a_reason(lake: Path) -> None:
    storage = LocalStorage(lake)
    env = fx.export_envelope(IMPORT_AT, "Streaming_History_Audio_2024_0.json", [{"id": 1}])
    key = fx.put_raw(storage, env)
    marker = handler.transform_object(storage, key)
    assert marker["status"] == "quarantined"
    assert "not a streaming history" in marker["reason"]
    report = get_json(storage, layout.quarantine_key(key))
    assert "Streaming_History_Audio_2024_0.json" in report["reason"]
    assert not list(lake.glob("curated/plays/*/*.parquet"))


def test_a_row_without_a_valid_time_costs_only_itself(lake: Path, tmp_path: Path) -> None:
    path = tmp_path / "Streaming_History_Audio_2024_0.json"
    path.write_text(json.dumps([
        ext("2024-05-01T10:00:00Z", "t1"),
        ext("yesterday", "t2"),
        ext("9999-12-31T23:00:00Z", "t3"),  # parses, but no day after it exists
        ext("0001-01-01T00:00:00Z", "t4"),
        ext("2026-03-09T10:00:00Z", "t5"),  # days after the import: no stream yet
    ]))  # fmt: skip
    assert run_import(str(path)) == 0
    assert [r[1] for r in brief(lake)] == ["t1"]
    [report] = list((lake / "quarantine").rglob("*.values.json"))
    assert all(value in report.read_text() for value in ("yesterday", "9999-12-31", "2026-03-09"))


def test_a_ts_finer_than_milliseconds_is_one_play_however_often_imported(
    lake: Path, tmp_path: Path
) -> None:
    path = tmp_path / "Streaming_History_Audio_2024_0.json"
    path.write_text(json.dumps([ext("2024-01-01T10:00:00.000500Z", "t1")]))
    assert run_import(str(path)) == 0
    assert run_import(str(path), at="2026-03-06T12:00:00Z") == 0
    assert brief(lake) == [("2024-01-01T10:00:00.000Z", "t1", "export", 200_000)]


def test_account_rows_find_tracks_known_before_the_import_whatever_lands_after(
    lake: Path, tmp_path: Path
) -> None:
    """The same lake however its objects arrive: live (import, then a poll the same day that
    brings the track), and `reprocess` (every API object first)."""
    path = tmp_path / "StreamingHistory_music_0.json"
    path.write_text(json.dumps([{"endTime": "2026-03-04 09:00", "artistName": "Ada",
                                 "trackName": "One", "msPlayed": 100_000}]))  # fmt: skip
    assert run_import(str(path)) == 0  # 2026-03-05 12:00
    land_polls(lake, [api_poll("2026-03-05T18:00:00Z", [(fx.T1, "2026-03-05T17:00:00Z")])])
    live = plays(lake)
    assert [(r["track_name"], r["track_id"]) for r in live] == [("One", None), (None, "t1")]
    handler.reprocess(LocalStorage(lake))
    assert plays(lake) == live
    path.write_text(json.dumps([{"endTime": "2026-03-04 10:00", "artistName": "Ada",
                                 "trackName": "One", "msPlayed": 100_000}]))  # fmt: skip
    assert run_import(str(path), at="2026-03-05T19:00:00Z") == 0  # after that poll: known
    assert [r["track_id"] for r in plays(lake) if r["source"] == "export"] == [None, "t1"]


def test_the_import_needs_no_spotify_app_and_says_when_the_user_is_not_connected(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "Streaming_History_Audio_2024_0.json"
    path.write_text(json.dumps([ext("2024-05-01T10:00:00Z", "t1")]))
    assert run_import(str(path)) == 0
    assert "alice is not a connected Spotify user" in capsys.readouterr().err


def test_an_import_covering_a_possible_gap_closes_it_in_health(lake: Path, tmp_path: Path) -> None:
    from chalicelib.extract import plays as plays_dataset
    from chalicelib.storage import update_json

    storage = LocalStorage(lake)
    gap = {"from": "2026-03-02T10:00:00.000Z", "to": "2026-03-02T20:00:00.000Z",
           "seen_at": "2026-03-02T21:00:00.000Z"}  # fmt: skip
    update_json(storage, plays_dataset.state_key(USER), lambda doc: {"gaps": [gap]})
    now = layout.parse_iso("2026-03-05T12:00:00Z")

    def open_now() -> int:
        return len(plays_dataset.open_gaps(get_json(storage, plays_dataset.state_key(USER)), now))

    short = tmp_path / "short" / "Streaming_History_Audio_2026_0.json"
    short.parent.mkdir()
    short.write_text(
        json.dumps([ext("2026-03-02T11:00:00Z", "t1"), ext("2026-03-02T19:00:00Z", "t2")])
    )
    assert run_import(str(short)) == 0
    assert open_now() == 1  # the file starts after the gap does: plays before it may be missing
    whole = tmp_path / "whole" / "Streaming_History_Audio_2026_0.json"
    whole.parent.mkdir()
    whole.write_text(
        json.dumps([ext("2026-03-01T11:00:00Z", "t1"), ext("2026-03-03T19:00:00Z", "t2")])
    )
    assert run_import(str(whole)) == 0
    assert open_now() == 0
    assert get_json(storage, plays_dataset.state_key(USER))["gaps"] == [gap]  # kept, closed


def test_both_downloads_of_one_stream_are_one_play_in_any_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Account data repeats the last year of the extended history, to the minute and by name:
    each stream counts once, whichever download comes first."""
    extended = [
        ext("2026-01-10T10:03:37Z", "t1", track_name="One", artist_name="Ada"),
        ext("2026-01-10T11:00:00Z", "t2", track_name="Two", artist_name="Bo"),  # to the second
        episode_row("2026-01-10T12:30:10Z"),
    ]
    account = [
        music_row("2026-01-10 10:03", "Ada", "One"),
        music_row("2026-01-10 11:00", "Bo", "Two"),
        music_row("2026-01-10 10:30", "Ada", "One", ms=90_000),
    ]
    podcast = [{"endTime": "2026-01-10 12:30", "podcastName": "The Show", "episodeName": "Ep 1",
                "msPlayed": 1_200_000}]  # fmt: skip
    zipped = write_zip(tmp_path / "my_spotify_data.zip", {
        f"{EXT_DIR}/Streaming_History_Audio_2026_0.json": extended,
        f"{ACC_DIR}/StreamingHistory_music_0.json": account,
        f"{ACC_DIR}/StreamingHistory_podcast_0.json": podcast,
    })  # fmt: skip
    account_only = write_zip(tmp_path / "account.zip", {
        f"{ACC_DIR}/StreamingHistory_music_0.json": account,
        f"{ACC_DIR}/StreamingHistory_podcast_0.json": podcast,
    })  # fmt: skip
    extended_only = write_zip(tmp_path / "extended.zip", {
        f"{EXT_DIR}/Streaming_History_Audio_2026_0.json": extended,
    })  # fmt: skip
    tables = []
    for name, zips in (("together", [zipped]), ("account first", [account_only, extended_only]),
                       ("extended first", [extended_only, account_only])):  # fmt: skip
        lake = tmp_path / name.replace(" ", "_")
        monkeypatch.setenv("LAKE_URI", str(lake))
        for path in zips:
            assert run_import(str(path)) == 0
        tables.append([(layout.iso(r["played_at"]), r["track_name"], r["show_name"],
                        r["platform"]) for r in plays(lake)])  # fmt: skip
    assert (
        tables[0]
        == tables[1]
        == tables[2]
        == [
            ("2026-01-10T10:03:37.000Z", "One", None, "android"),
            ("2026-01-10T10:30:00.000Z", "One", None, None),  # only the account data has it
            ("2026-01-10T11:00:00.000Z", "Two", None, "android"),
            ("2026-01-10T12:30:10.000Z", None, "The Show", "android"),
        ]
    )


def test_an_import_that_stopped_before_its_transform_is_finished_by_the_next(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spotify_etl import import_history as importer

    path = tmp_path / "Streaming_History_Audio_2024_0.json"
    path.write_text(json.dumps([ext("2024-05-01T10:00:00Z", "t1")]))
    collected = importer.collect([path])
    importer.land(LocalStorage(lake), collected.files, USER, layout.parse_iso(IMPORT_AT))
    assert plays(lake) == []  # landed, then the laptop slept
    assert run_import(str(path)) == 0
    assert "1 new plays" in capsys.readouterr().out
    assert [r[1] for r in brief(lake)] == ["t1"]


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # nested past Python's recursion limit
        (b"\xff\xfe not utf-8", "not JSON"),
    ],
)
def test_odd_members_of_a_zip_are_refused_before_upload(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], member: bytes, message: str
) -> None:
    zipped = write_zip(
        tmp_path / "odd.zip", {f"{EXT_DIR}/Streaming_History_Audio_2024_0.json": member}
    )
    assert run_import(str(zipped)) == 2
    assert message in capsys.readouterr().err
    assert not lake.exists() or not any(lake.rglob("*.gz"))


def test_a_zip_member_past_the_size_cap_is_refused_unread(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from spotify_etl import import_history as importer

    monkeypatch.setattr(importer, "MAX_FILE_BYTES", 1000)
    rows = [ext(f"2024-05-01T10:{m:02d}:00Z", "t1") for m in range(20)]
    zipped = write_zip(
        tmp_path / "big.zip", {f"{EXT_DIR}/Streaming_History_Audio_2024_0.json": rows}
    )
    assert run_import(str(zipped)) == 2
    assert "larger than" in capsys.readouterr().err
