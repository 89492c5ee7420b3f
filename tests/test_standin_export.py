"""The stand-in's "Download your data": the demo export's layout, formats, quirks and truth,
and the benchmark's synthetic history (contract §8)."""

from __future__ import annotations

import io
import itertools
import json
import re
import time
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from spotify_standin import DEMO_USER, demo_world
from spotify_standin.demo import GONE_TRACK, HISTORY_DAYS_BEFORE
from spotify_standin.export import (
    ACCOUNT_DIR,
    EXTENDED_DIR,
    EXTENDED_FIELDS,
    LEGACY_FIELDS,
    NETWORK_FIELDS,
    HistoryExport,
    TruthRow,
    demo_export,
    demo_export_zip,
    synthetic_extended_history,
)

START = datetime(2026, 11, 16, tzinfo=UTC)
NOW = START + timedelta(days=2, hours=12)
AUDIO = re.compile(
    r"^Spotify Extended Streaming History/Streaming_History_Audio_\d{4}(-\d{4})?_\d+\.json$"
)
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
END_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")


@pytest.fixture(scope="module")
def export() -> HistoryExport:
    return demo_export(demo_world(START), DEMO_USER, NOW)


@pytest.fixture(scope="module")
def unzipped() -> dict[str, bytes]:
    data = demo_export_zip(demo_world(START), DEMO_USER, NOW)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rows_of(files: dict[str, bytes], pattern: str) -> list[dict]:
    return [row for name, data in files.items() if pattern in name for row in json.loads(data)]


def test_the_zip_holds_both_formats_and_the_files_to_skip(unzipped: dict[str, bytes]) -> None:
    names = sorted(unzipped)
    audio = [n for n in names if AUDIO.match(n)]
    assert [n.rsplit("_", 1)[1] for n in audio] == ["0.json", "1.json", "2.json"]
    assert f"{EXTENDED_DIR}/Streaming_History_Video_2026.json" in names
    assert f"{EXTENDED_DIR}/ReadMeFirst_ExtendedStreamingHistory.pdf" in names
    assert unzipped[f"{EXTENDED_DIR}/ReadMeFirst_ExtendedStreamingHistory.pdf"][:5] == b"%PDF-"
    assert {
        f"{ACCOUNT_DIR}/StreamingHistory_music_0.json",
        f"{ACCOUNT_DIR}/StreamingHistory_music_1.json",
        f"{ACCOUNT_DIR}/StreamingHistory_podcast_0.json",
        f"{ACCOUNT_DIR}/Userdata.json",
    } <= set(names)
    assert json.loads(unzipped[f"{ACCOUNT_DIR}/Userdata.json"])["username"] == DEMO_USER


def test_extended_rows_have_every_field_in_spotifys_order(unzipped: dict[str, bytes]) -> None:
    rows = rows_of(unzipped, "Streaming_History_Audio_")
    assert len(rows) > 500
    assert all(tuple(row) == EXTENDED_FIELDS for row in rows)
    assert all(TS.match(row["ts"]) and isinstance(row["ms_played"], int) for row in rows)
    assert all(row["ip_addr"] for row in rows)  # network identifiers present: importers drop them
    for name, data in unzipped.items():
        if AUDIO.match(name):  # Spotify's spelling: four-space indent, UTF-8 unescaped
            assert data == json.dumps(json.loads(data), indent=4, ensure_ascii=False).encode()
    kinds = {
        "track": [r for r in rows if r["spotify_track_uri"]],
        "episode": [r for r in rows if r["spotify_episode_uri"]],
        "audiobook": [r for r in rows if r["audiobook_chapter_uri"]],
    }
    assert all(len(found) >= 4 for found in kinds.values())
    for row in kinds["episode"]:
        assert row["episode_name"] and row["episode_show_name"]
        assert row["master_metadata_track_name"] is None and row["spotify_track_uri"] is None
    for row in kinds["audiobook"]:
        assert row["audiobook_title"] and row["audiobook_chapter_title"]
        assert row["audiobook_uri"].startswith("spotify:audiobook:")
        assert row["audiobook_chapter_uri"].startswith("spotify:chapter:")
    # Rows are sorted by `ts` across the files (one row repeats at a boundary).
    stamps = [r["ts"] for r in rows]
    assert stamps == sorted(stamps)


def test_extended_quirks_are_all_there(unzipped: dict[str, bytes]) -> None:
    rows = rows_of(unzipped, "Streaming_History_Audio_")
    assert any(r["skipped"] is None for r in rows)
    assert any(r["ms_played"] == 0 for r in rows)
    assert any(r["ms_played"] == 0 and r["spotify_track_uri"] is None for r in rows)
    assert any(r["ms_played"] < 30_000 and r["skipped"] is True for r in rows)
    assert any(r["incognito_mode"] for r in rows) and any(r["offline"] for r in rows)
    offline_ts = [r["offline_timestamp"] for r in rows if r["offline_timestamp"]]
    assert any(t < 10**11 for t in offline_ts) and any(t > 10**12 for t in offline_ts)
    # The same row in two files; two different rows with the same `ts`.
    dumped = [json.dumps(r, sort_keys=True) for r in rows]
    assert len(dumped) - len(set(dumped)) == 1
    by_ts: dict[str, set[str]] = {}
    for r, d in zip(rows, dumped, strict=True):
        by_ts.setdefault(r["ts"], set()).add(d)
    assert [len(v) for v in by_ts.values() if len(v) > 1] == [2]
    # The same track twice in a row.
    uris = [r["spotify_track_uri"] for r in rows]
    assert any(a == b and a for a, b in itertools.pairwise(uris))
    # A track Spotify no longer has.
    assert f"spotify:track:{GONE_TRACK}" in uris


def test_account_rows_and_their_names(unzipped: dict[str, bytes], export: HistoryExport) -> None:
    music = rows_of(unzipped, "StreamingHistory_music_")
    podcasts = rows_of(unzipped, "StreamingHistory_podcast_")
    assert music and podcasts
    assert all(list(r) == ["endTime", "artistName", "trackName", "msPlayed"] for r in music)
    assert all(list(r) == ["endTime", "podcastName", "episodeName", "msPlayed"] for r in podcasts)
    assert all(END_TIME.match(r["endTime"]) for r in music + podcasts)
    # Minute precision, yet one row per minute: no two account rows collide on `played_at`.
    assert len({r["endTime"] for r in music + podcasts}) == len(music + podcasts)
    assert {"artistName": "Kraftwerk", "trackName": "Autobahn"}.items() <= next(
        r for r in music if r["trackName"] == "Autobahn"
    ).items()
    account = [r for r in export.truth.rows if r.format == "account" and r.item_type == "track"]
    [unknown] = [r for r in account if "no_known_track" in r.quirks]
    ambiguous = [r for r in account if "ambiguous_names" in r.quirks]
    assert unknown.track_id is None and ambiguous and all(r.track_id is None for r in ambiguous)
    assert sum(r.track_id is not None for r in account) > 20
    raw = unzipped[f"{ACCOUNT_DIR}/StreamingHistory_music_0.json"].decode()
    assert '"endTime" : "' in raw  # the account format's own spelling


def test_formats_do_not_overlap_and_the_older_history_spans_months(
    export: HistoryExport,
) -> None:
    truth = export.truth
    window_from, window_to = truth.account_window
    extended = [r for r in truth.rows if r.format == "extended"]
    account = [r for r in truth.rows if r.format == "account"]
    assert all(window_from <= r.ts < window_to for r in account)
    assert not any(window_from <= r.ts < window_to for r in extended)
    timeline_from = START - timedelta(days=HISTORY_DAYS_BEFORE)
    assert min(r.ts for r in extended) < timeline_from - timedelta(days=150)
    assert max(r.ts for r in extended) <= NOW
    assert set(truth.skipped_files) == {
        f"{EXTENDED_DIR}/Streaming_History_Video_2026.json",
        f"{EXTENDED_DIR}/ReadMeFirst_ExtendedStreamingHistory.pdf",
        f"{ACCOUNT_DIR}/Userdata.json",
        f"{ACCOUNT_DIR}/ReadMeFirst_AccountData.pdf",
    }


def test_truth_marks_duplicates_and_same_ts_losers(export: HistoryExport) -> None:
    truth = export.truth
    [duplicate] = [r for r in truth.rows if r.duplicate_of]
    original = _row(truth.rows, duplicate.duplicate_of)
    assert duplicate.file != original.file
    assert _record(export, duplicate) == _record(export, original)
    [loser] = [r for r in truth.rows if r.loses_to]
    winner = _row(truth.rows, loser.loses_to)
    assert loser.ts == winner.ts and loser.ms_played < winner.ms_played
    assert loser not in truth.plays() and duplicate not in truth.plays()
    enrichable = {r.track_id for r in truth.plays() if r.in_catalogue}
    missing = {r.track_id for r in truth.plays() if r.track_id and not r.in_catalogue}
    assert missing == {GONE_TRACK} and len(enrichable) > 30


def test_export_rows_match_the_api_plays_by_the_contracts_rule(export: HistoryExport) -> None:
    """Every export row of an API play pairs with exactly that play under §8's matching
    (≤ 90 s from `ts` or from `ts - ms_played`, one-to-one, by the smaller distance)."""
    world = demo_world(START)
    served = [
        p for p in world.user(DEMO_USER).plays if p.item in world.tracks and p.played_at <= NOW
    ]
    truth = export.truth
    rows = [r for r in truth.plays() if r.format == "extended" and r.track_id]
    pairs = _contract_pairs(served, rows)
    expected = {(r.api_played_at, r.file, r.index) for r in rows if r.api_played_at}
    assert {(p, r.file, r.index) for p, r in pairs} == expected
    conventions = {q for r in rows for q in r.quirks if q.startswith("played_at_is_")}
    assert conventions == {"played_at_is_start", "played_at_is_end"}
    # Part of the API's timeline (it runs on after `NOW`); the newest 50 overlap the export.
    timeline = [p for p in world.user(DEMO_USER).plays if p.item in world.tracks]
    assert 100 < len(expected) <= len(served) < len(timeline)
    newest = {p.played_at for p in world.user(DEMO_USER).history_at(NOW)}
    assert newest & set(truth.matched())


def test_the_export_is_deterministic() -> None:
    one = demo_export_zip(demo_world(START), DEMO_USER, NOW)
    assert one == demo_export_zip(demo_world(START), DEMO_USER, NOW)
    assert one != demo_export_zip(demo_world(START), DEMO_USER, NOW + timedelta(days=1))


def test_the_older_naming_and_fields() -> None:
    legacy = demo_export(demo_world(START), DEMO_USER, NOW, legacy=True)
    names = [n for n, _ in legacy.files]
    endsong = [n for n in names if "endsong" in n]
    assert endsong == ["MyData/endsong_0.json", "MyData/endsong_1.json", "MyData/endsong_2.json"]
    assert "MyData/StreamingHistory0.json" in names
    files = dict(legacy.files)
    rows = rows_of(files, "endsong_")
    assert all(tuple(r) == LEGACY_FIELDS for r in rows)
    present = {f for r in rows for f in NETWORK_FIELDS if r.get(f)}
    assert present == {"ip_addr_decrypted", "user_agent_decrypted", "username"}
    assert not any(r.item_type == "audiobook" for r in legacy.truth.rows)


def test_the_api_timeline_is_unchanged_by_the_export_history() -> None:
    """The export-only catalogue and streams come last: the API's answers do not depend on them."""
    world = demo_world(START)
    me = world.user(DEMO_USER)
    assert all(p.item in world.tracks or p.item.startswith("local:") for p in me.plays)
    export_only = {t.id for t in world.tracks.values()} - {p.item for p in me.plays}
    playlists = {e.item for p in world.playlists.values() for r in p.revisions for e in r.entries}
    assert export_only and not export_only & playlists
    assert GONE_TRACK not in world.tracks


def test_synthetic_history_is_large_realistic_and_fast() -> None:
    started = time.perf_counter()
    files = synthetic_extended_history(years=10, rows=150_000, files=12, seed=7)
    took = time.perf_counter() - started
    assert took < 20  # a few seconds on a laptop; generous for a busy CI machine
    assert len(files) == 12 and all(AUDIO.match(name) for name, _ in files)
    sizes = [len(data) for _, data in files]
    assert all(10_000_000 < s < 14_000_000 for s in sizes)
    first = json.loads(files[0][1])
    assert files[0][1] == json.dumps(first, indent=4, ensure_ascii=False).encode()
    rows = first + [r for _, data in files[1:] for r in json.loads(data)]
    assert len(rows) == 150_000
    assert all(tuple(r) == EXTENDED_FIELDS for r in rows[:1000])
    tracks = {r["spotify_track_uri"] for r in rows if r["spotify_track_uri"]}
    assert 2_000 < len(tracks) < 10_000
    assert any(r["spotify_episode_uri"] for r in rows) and all(r["ip_addr"] for r in rows)
    stamps = [r["ts"] for r in rows]
    assert stamps == sorted(stamps)
    assert int(stamps[-1][:4]) - int(stamps[0][:4]) >= 9


def test_synthetic_history_is_deterministic() -> None:
    small = synthetic_extended_history(years=2, rows=3_000, files=3, seed=1)
    assert small == synthetic_extended_history(years=2, rows=3_000, files=3, seed=1)
    assert small != synthetic_extended_history(years=2, rows=3_000, files=3, seed=2)
    assert sum(len(json.loads(data)) for _, data in small) == 3_000


# --- helpers --------------------------------------------------------------------------------


def _row(rows: tuple[TruthRow, ...], at: tuple[str, int] | None) -> TruthRow:
    return next(r for r in rows if (r.file, r.index) == at)


def _record(export: HistoryExport, row: TruthRow) -> dict:
    return json.loads(dict(export.files)[row.file])[row.index]


def _contract_pairs(served: list, rows: list[TruthRow]) -> list[tuple[datetime, TruthRow]]:
    """§8's matching, written independently: candidate pairs within 90 s, taken one-to-one by
    the smaller distance, ties to the earlier `ts`."""
    limit = timedelta(seconds=90)
    candidates = []
    for play in served:
        for row in rows:
            if row.track_id != play.item:
                continue
            start = row.ts - timedelta(milliseconds=row.ms_played)
            distance = min(abs(play.played_at - row.ts), abs(play.played_at - start))
            if distance <= limit:
                candidates.append((distance, row.ts, play.played_at, row))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    used_plays, used_rows, pairs = set(), set(), []
    for _, _, played_at, row in candidates:
        if played_at in used_plays or (row.file, row.index) in used_rows:
            continue
        used_plays.add(played_at)
        used_rows.add((row.file, row.index))
        pairs.append((played_at, row))
    return pairs
