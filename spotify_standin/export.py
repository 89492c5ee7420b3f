"""Spotify's "Download your data", as the stand-in world would give it (contract §8).

Two uses:

- `demo_export(world, user_id, now)` renders one user's `my_spotify_data.zip`: the extended
  streaming history (`Spotify Extended Streaming History/Streaming_History_Audio_<years>_<n>.json`)
  and the Account Data format (`Spotify Account Data/StreamingHistory_music_<n>.json`,
  `StreamingHistory_podcast_<n>.json`), with the files an importer must skip beside them. Its
  `truth` says, per history row, what an importer should make of it: which API play it is,
  whether it repeats another row, which track its names resolve to.
- `synthetic_extended_history(...)` renders a large, realistic extended history for the
  import benchmark, fast and deterministically, without a world.

The export's rows come from two places: `User.streams` (what only the export knows) and the
user's API plays, re-told as the export tells them. Spotify's `played_at` is sometimes the start
and sometimes the end of a play; the export's `ts` is always the end. So for some plays the row's
`ts` is `played_at + ms_played`, for others `played_at` itself, give or take a few seconds.
"""

from __future__ import annotations

import io
import json
import random
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from spotify_standin.demo import ACCOUNT_DATA_DAYS, HISTORY_DAYS_BEFORE
from spotify_standin.world import Play, Stream, World

EXTENDED_DIR = "Spotify Extended Streaming History"
ACCOUNT_DIR = "Spotify Account Data"
LEGACY_DIR = "MyData"
ZIP_NAME = "my_spotify_data.zip"

# Network identifiers: the current format has `ip_addr`; older exports (`endsong_<n>.json`) the
# other three. Importers must drop all four before anything is written (§8).
NETWORK_FIELDS = ("ip_addr", "ip_addr_decrypted", "user_agent_decrypted", "username")

# Spotify's field order, current format.
EXTENDED_FIELDS = (
    "ts",
    "platform",
    "ms_played",
    "conn_country",
    "ip_addr",
    "master_metadata_track_name",
    "master_metadata_album_artist_name",
    "master_metadata_album_album_name",
    "spotify_track_uri",
    "episode_name",
    "episode_show_name",
    "spotify_episode_uri",
    "audiobook_title",
    "audiobook_uri",
    "audiobook_chapter_uri",
    "audiobook_chapter_title",
    "reason_start",
    "reason_end",
    "shuffle",
    "skipped",
    "offline",
    "offline_timestamp",
    "incognito_mode",
)
# Older exports: identifiers of the user and the device, no audiobooks yet.
LEGACY_FIELDS = (
    "ts",
    "username",
    "platform",
    "ms_played",
    "conn_country",
    "ip_addr_decrypted",
    "user_agent_decrypted",
    "master_metadata_track_name",
    "master_metadata_album_artist_name",
    "master_metadata_album_album_name",
    "spotify_track_uri",
    "episode_name",
    "episode_show_name",
    "spotify_episode_uri",
    "reason_start",
    "reason_end",
    "shuffle",
    "skipped",
    "offline",
    "offline_timestamp",
    "incognito_mode",
)
_LEGACY_PLATFORMS = {
    "android": ("Android OS 9 API 28 (samsung, SM-G960F)", "Spotify/8.4.98 Android/28 (SM-G960F)"),
    "ios": ("iOS 12.1.4 (iPhone9,3)", "Spotify/8.4.96 iOS/12.1.4 (iPhone9,3)"),
    "windows": ("Windows 10 (10.0.17763; x64)", "unknown"),
    "osx": ("OS X 10.14.3 [x86 8]", "unknown"),
    "web_player": ("WebPlayer (websocket RFC6455)", "Mozilla/5.0 (X11; Linux x86_64)"),
}

# Before this many days ahead of the world's start, `offline_timestamp` is in seconds; from then
# on in milliseconds, as Spotify changed it.
OFFLINE_MS_SINCE_DAYS = 100
# Spotify's `played_at` and the export's `ts` differ by up to this much for the same play.
JITTER_MS = 3_000
_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


# --- truth --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthRow:
    """One history row of an export, and what an importer should make of it."""

    file: str  # path inside the zip
    index: int  # position in the file's JSON array
    format: str  # "extended" | "account"
    item_type: str  # "track" | "episode" | "audiobook" | "unknown"
    ts: datetime  # as the row gives it: to the second (extended) or the minute (account)
    ms_played: int
    # The track: from the URI (extended), or the one known track with those names (account;
    # None when no known track or more than one has them).
    track_id: str | None
    uri: str | None  # the row's track, episode or chapter URI (extended rows only)
    in_catalogue: bool  # GET /tracks/{track_id} answers 200
    api_played_at: datetime | None  # the API play this row is (§8 matching), if any
    duplicate_of: tuple[str, int] | None = None  # an identical earlier row: one play, not two
    loses_to: tuple[str, int] | None = None  # a row with the same `ts` that wins (§8)
    quirks: frozenset[str] = frozenset()

    @property
    def is_play(self) -> bool:
        """The row stands for a play of its own in `plays` (after §8's de-duplication)."""
        return self.duplicate_of is None and self.loses_to is None


@dataclass(frozen=True)
class ExportTruth:
    """What an export holds, row by row, for tests of an importer."""

    rows: tuple[TruthRow, ...]
    skipped_files: tuple[str, ...]  # in the zip, but no history: importers skip them
    account_window: tuple[datetime, datetime]  # streams ending here are in the account format

    def plays(self) -> list[TruthRow]:
        """The rows that are plays of their own, oldest first."""
        return sorted((r for r in self.rows if r.is_play), key=lambda r: (r.ts, r.file, r.index))

    def matched(self) -> dict[datetime, TruthRow]:
        """API `played_at` → the export row that is the same play (`source = both`)."""
        return {r.api_played_at: r for r in self.rows if r.is_play and r.api_played_at}

    def with_quirk(self, quirk: str) -> list[TruthRow]:
        return [r for r in self.rows if quirk in r.quirks]

    def files(self) -> list[str]:
        return sorted({r.file for r in self.rows})


@dataclass(frozen=True)
class HistoryExport:
    """An export's files (path inside the zip, bytes), in zip order, and their truth."""

    files: tuple[tuple[str, bytes], ...]
    truth: ExportTruth
    made_at: datetime

    def zip_bytes(self) -> bytes:
        """`my_spotify_data.zip`: the same bytes for the same export."""
        buffer = io.BytesIO()
        stamp = self.made_at.astimezone(UTC).timetuple()[:6]
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in self.files:
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
        return buffer.getvalue()


# --- the demo export ----------------------------------------------------------------------


@dataclass
class _Row:
    """A stream as the export tells it, before it is spelled in one format or the other."""

    ended: datetime  # already truncated to the second
    ms_played: int
    item_type: str
    item_id: str | None  # track, episode or chapter id
    # track, episode or chapter; artist, show or audiobook; album
    names: tuple[str | None, str | None, str | None]
    stream: Stream
    api_played_at: datetime | None = None
    quirks: set[str] = field(default_factory=set)
    book_id: str | None = None  # an audiobook chapter's book


def demo_export_zip(
    world: World, user_id: str, now: datetime, *, legacy: bool = False, files: int = 3
) -> bytes:
    """`my_spotify_data.zip` of `user_id`, as requested at `now`. See `demo_export`."""
    return demo_export(world, user_id, now, legacy=legacy, files=files).zip_bytes()


def demo_export(
    world: World, user_id: str, now: datetime, *, legacy: bool = False, files: int = 3
) -> HistoryExport:
    """The user's data export as requested at `now`, with its truth.

    Extended history: every stream and API play that ended by `now`, in `files` files, except
    the streams of the Account Data window (`ACCOUNT_DATA_DAYS` before the timeline), which are
    in the account format only. `legacy` gives the older layout: `MyData/endsong_<n>.json`
    (with `username`, `ip_addr_decrypted`, `user_agent_decrypted`, no audiobooks) and
    `MyData/StreamingHistory<n>.json`.
    """
    day0 = world.start.replace(hour=0, minute=0, second=0, microsecond=0)
    timeline_from = day0 - timedelta(days=HISTORY_DAYS_BEFORE)
    window = (timeline_from - timedelta(days=ACCOUNT_DATA_DAYS), timeline_from)
    user = world.user(user_id)
    rows = [_stream_row(world, s) for s in user.streams if s.ended_at <= now]
    rows += _api_rows(world, user.plays, user_id, now)
    if legacy:  # older exports predate audiobooks
        rows = [r for r in rows if r.item_type != "audiobook"]
    extended = sorted(
        (r for r in rows if not window[0] <= r.ended < window[1]),
        key=lambda r: (r.ended, _uri(r) or ""),
    )
    account = sorted((r for r in rows if window[0] <= r.ended < window[1]), key=lambda r: r.ended)
    offline_ms_from = world.start - timedelta(days=OFFLINE_MS_SINCE_DAYS)
    extended_dir = LEGACY_DIR if legacy else EXTENDED_DIR
    account_dir = LEGACY_DIR if legacy else ACCOUNT_DIR

    out: list[tuple[str, bytes]] = []
    truth: list[TruthRow] = []
    first_seen: dict[str, tuple[str, int]] = {}
    chunks = _chunks(extended, files)
    if len(chunks) > 1 and chunks[0]:
        # Spotify repeats a row at a file boundary now and then: one play, in two files.
        chunks[1].insert(0, chunks[0][-1])
    for n, chunk in enumerate(chunks):
        if legacy:
            name = f"{extended_dir}/endsong_{n}.json"
        else:
            name = f"{extended_dir}/Streaming_History_Audio_{_years(chunk)}_{n}.json"
        records = [_extended_record(r, user_id, legacy, offline_ms_from) for r in chunk]
        for index, (row, record) in enumerate(zip(chunk, records, strict=True)):
            kept = {k: v for k, v in record.items() if k not in NETWORK_FIELDS}
            key = json.dumps(kept, sort_keys=True)
            duplicate_of = first_seen.setdefault(key, (name, index))
            if duplicate_of == (name, index):
                duplicate_of = None
            track_id = row.item_id if row.item_type == "track" else None
            truth.append(_truth(world, row, name, index, duplicate_of, track_id, record))
        out.append((name, _extended_json(records)))
    truth = _same_ts_losers(truth)

    known = _known_names(world, extended)
    music = [r for r in account if r.item_type == "track"]
    podcasts = [r for r in account if r.item_type == "episode"]
    for n, chunk in enumerate(_chunks(music, 2)):
        if legacy:
            name = f"{account_dir}/StreamingHistory{n}.json"
        else:
            name = f"{account_dir}/StreamingHistory_music_{n}.json"
        records = [_account_music(r) for r in chunk]
        for index, (row, record) in enumerate(zip(chunk, records, strict=True)):
            matches = known.get((row.names[0], row.names[1]), set())
            if not matches:
                row.quirks.add("no_known_track")
            elif len(matches) > 1:
                row.quirks.add("ambiguous_names")
            track_id = next(iter(matches)) if len(matches) == 1 else None
            truth.append(_truth(world, row, name, index, None, track_id, record))
        out.append((name, _account_json(records)))
    name = f"{account_dir}/StreamingHistory_podcast_0.json"
    records = [_account_podcast(r) for r in podcasts]
    for index, (row, record) in enumerate(zip(podcasts, records, strict=True)):
        truth.append(_truth(world, row, name, index, None, None, record))
    out.append((name, _account_json(records)))

    skipped = _extras(world, user_id, now, legacy, extended_dir, account_dir, offline_ms_from)
    out += skipped
    export_truth = ExportTruth(tuple(truth), tuple(n for n, _ in skipped), window)
    return HistoryExport(tuple(out), export_truth, now)


def _stream_row(world: World, stream: Stream) -> _Row:
    ended = stream.ended_at.replace(microsecond=0)
    quirks = set()
    if stream.ms_played == 0:
        quirks.add("ms_played_zero")
    if stream.skipped is None:
        quirks.add("skipped_null")
    if stream.ms_played < 30_000 and stream.skipped:
        quirks.add("skip")
    if stream.incognito:
        quirks.add("incognito")
    if stream.offline:
        quirks.add("offline")
    item = stream.item
    if item in world.tracks:
        track = world.tracks[item]
        album = world.albums[track.album_id]
        names = (track.name, world.artists[track.artist_ids[0]].name, album.name)
        return _Row(ended, stream.ms_played, "track", item, names, stream, quirks=quirks)
    if item in world.episodes:
        episode = world.episodes[item]
        names = (episode.name, world.shows[episode.show_id].name, None)
        return _Row(ended, stream.ms_played, "episode", item, names, stream, quirks=quirks)
    if item in world.chapters:
        chapter = world.chapters[item]
        names = (chapter.name, world.audiobooks[chapter.audiobook_id].name, None)
        row = _Row(ended, stream.ms_played, "audiobook", item, names, stream, quirks=quirks)
        row.book_id = chapter.audiobook_id
        return row
    if stream.names is not None:
        # A track the catalogue no longer has (or never had): the export still names it.
        if item is not None:
            quirks.add("not_in_catalogue")
        return _Row(ended, stream.ms_played, "track", item, stream.names, stream, quirks=quirks)
    quirks.add("no_metadata")
    return _Row(ended, stream.ms_played, "unknown", None, (None, None, None), stream, quirks=quirks)


def _api_rows(world: World, plays: Iterable[Play], user_id: str, now: datetime) -> list[_Row]:
    """The user's API plays as the export tells them: `ts` is the end of the stream."""
    plays = sorted((p for p in plays if p.item in world.tracks), key=lambda p: p.played_at)
    rows = []
    for i, play in enumerate(plays):
        track = world.tracks[play.item]
        rng = random.Random(f"export:{user_id}:{play.played_at.isoformat()}")
        ms = track.duration_ms
        reason_end, skipped = "trackdone", False
        if rng.random() < 0.15:  # stopped early, but past Spotify's 30 s
            ms = rng.randrange(30_000, track.duration_ms)
            reason_end = rng.choice(("fwdbtn", "endplay"))
            skipped = reason_end == "fwdbtn"
        # The same track again within minutes: no jitter, so the pairing cannot be in doubt.
        close = [
            q
            for q in plays[max(0, i - 3) : i + 4]
            if q is not play
            and q.item == play.item
            and abs(q.played_at - play.played_at) < timedelta(minutes=20)
        ]
        ends_at_played_at = not close and rng.random() < 0.35
        jitter = timedelta(milliseconds=0 if close else rng.randint(-JITTER_MS, JITTER_MS))
        ended = play.played_at + jitter
        if not ends_at_played_at:
            ended += timedelta(milliseconds=ms)
        ended = ended.replace(microsecond=0)
        if ended > now:
            continue
        stream = Stream(
            play.item,
            ended,
            ms,
            "trackdone" if i and rng.random() < 0.7 else "clickrow",
            reason_end,
            shuffle=rng.random() < 0.3,
            skipped=skipped,
            platform=rng.choice(("android", "ios", "osx")),
        )
        names = (
            track.name,
            world.artists[track.artist_ids[0]].name,
            world.albums[track.album_id].name,
        )
        quirks = {"played_at_is_end" if ends_at_played_at else "played_at_is_start"}
        rows.append(_Row(ended, ms, "track", play.item, names, stream, play.played_at, quirks))
    return rows


def _uri(row: _Row) -> str | None:
    if row.item_id is None:
        return None
    kind = {"track": "track", "episode": "episode", "audiobook": "chapter"}[row.item_type]
    return f"spotify:{kind}:{row.item_id}"


def _extended_record(
    row: _Row, user_id: str, legacy: bool, offline_ms_from: datetime
) -> dict[str, object]:
    s = row.stream
    track, episode, chapter = (row.item_type == k for k in ("track", "episode", "audiobook"))
    started = row.ended - timedelta(milliseconds=row.ms_played)
    offline_ts: int | None = None
    if row.item_type != "unknown":
        seconds = int(started.timestamp())
        if row.ended < offline_ms_from:
            offline_ts = seconds
            row.quirks.add("offline_timestamp_s")
        else:
            offline_ts = seconds * 1000 + started.microsecond // 1000
            row.quirks.add("offline_timestamp_ms")
    ip = _ip(s.conn_country, row.ended)
    platform, agent = _LEGACY_PLATFORMS.get(s.platform, (s.platform, "unknown"))
    book = row.names[1] if chapter else None
    values: dict[str, object] = {
        "ts": row.ended.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "username": user_id,
        "platform": platform if legacy else s.platform,
        "ms_played": row.ms_played,
        "conn_country": s.conn_country,
        "ip_addr": ip,
        "ip_addr_decrypted": ip,
        "user_agent_decrypted": agent,
        "master_metadata_track_name": row.names[0] if track else None,
        "master_metadata_album_artist_name": row.names[1] if track else None,
        "master_metadata_album_album_name": row.names[2] if track else None,
        "spotify_track_uri": _uri(row) if track else None,
        "episode_name": row.names[0] if episode else None,
        "episode_show_name": row.names[1] if episode else None,
        "spotify_episode_uri": _uri(row) if episode else None,
        "audiobook_title": book,
        "audiobook_uri": f"spotify:audiobook:{row.book_id}" if chapter else None,
        "audiobook_chapter_uri": _uri(row) if chapter else None,
        "audiobook_chapter_title": row.names[0] if chapter else None,
        "reason_start": s.reason_start,
        "reason_end": s.reason_end,
        "shuffle": s.shuffle,
        "skipped": s.skipped,
        "offline": s.offline,
        "offline_timestamp": offline_ts,
        "incognito_mode": s.incognito,
    }
    return {k: values[k] for k in (LEGACY_FIELDS if legacy else EXTENDED_FIELDS)}


def _ip(country: str, ended: datetime) -> str:
    """A documentation-range address (RFC 5737), changing with the day like a home line's."""
    net = "203.0.113" if country == "DE" else "198.51.100"
    return f"{net}.{ended.toordinal() % 250 + 1}"


def _account_music(row: _Row) -> dict[str, object]:
    return {
        "endTime": row.ended.strftime("%Y-%m-%d %H:%M"),
        "artistName": row.names[1],
        "trackName": row.names[0],
        "msPlayed": row.ms_played,
    }


def _account_podcast(row: _Row) -> dict[str, object]:
    return {
        "endTime": row.ended.strftime("%Y-%m-%d %H:%M"),
        "podcastName": row.names[1],
        "episodeName": row.names[0],
        "msPlayed": row.ms_played,
    }


def _known_names(world: World, extended: list[_Row]) -> dict[tuple[str, str], set[str]]:
    """(track name, credited artist name) → track ids: the catalogue, and tracks the extended
    rows name with an id (the lake learns those from the export itself)."""
    known: dict[tuple[str, str], set[str]] = {}
    for track in world.tracks.values():
        for artist in track.artist_ids:
            known.setdefault((track.name, world.artists[artist].name), set()).add(track.id)
    for row in extended:
        if row.item_type == "track" and row.item_id and row.names[0] and row.names[1]:
            known.setdefault((row.names[0], row.names[1]), set()).add(row.item_id)
    return known


def _truth(
    world: World,
    row: _Row,
    file: str,
    index: int,
    duplicate_of: tuple[str, int] | None,
    track_id: str | None,
    record: dict[str, object],
) -> TruthRow:
    extended = "ts" in record
    quirks = set(row.quirks)
    if duplicate_of is not None:
        quirks.add("duplicate")
    if not extended:
        quirks -= {"offline_timestamp_s", "offline_timestamp_ms", "skipped_null"}
    return TruthRow(
        file=file,
        index=index,
        format="extended" if extended else "account",
        item_type=row.item_type,
        ts=row.ended if extended else row.ended.replace(second=0),
        ms_played=row.ms_played,
        track_id=track_id,
        uri=_uri(row) if extended else None,
        in_catalogue=track_id in world.tracks,
        api_played_at=row.api_played_at if extended else None,
        duplicate_of=duplicate_of,
        quirks=frozenset(quirks),
    )


def _same_ts_losers(rows: list[TruthRow]) -> list[TruthRow]:
    """Mark, among distinct extended rows sharing a `ts`, those §8 drops: the larger
    `ms_played` wins, then the URI that sorts first (no URI sorts last)."""
    groups: dict[datetime, list[TruthRow]] = {}
    for row in rows:
        if row.format == "extended" and row.duplicate_of is None:
            groups.setdefault(row.ts, []).append(row)
    losers: dict[tuple[str, int], tuple[str, int]] = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        winner = min(group, key=lambda r: (-r.ms_played, r.uri or "\uffff"))
        for row in group:
            if row is not winner:
                losers[(row.file, row.index)] = (winner.file, winner.index)
    marked = []
    for row in rows:
        loses_to = losers.get((row.file, row.index))
        if loses_to is None:
            marked.append(row)
        else:
            quirks = row.quirks | {"same_ts"}
            marked.append(_replace(row, loses_to=loses_to, quirks=quirks))
    winners = set(losers.values())
    return [
        _replace(r, quirks=r.quirks | {"same_ts"}) if (r.file, r.index) in winners else r
        for r in marked
    ]


def _replace(row: TruthRow, **changes: object) -> TruthRow:
    return replace(row, **changes)  # type: ignore[arg-type]


def _chunks(rows: list[_Row], files: int) -> list[list[_Row]]:
    """`rows` in `files` contiguous parts of about equal size (never fewer than one part)."""
    files = max(1, min(files, len(rows)))
    size, extra = divmod(len(rows), files)
    parts, at = [], 0
    for n in range(files):
        take = size + (1 if n < extra else 0)
        parts.append(rows[at : at + take])
        at += take
    return parts


def _years(rows: list[_Row]) -> str:
    """`2025` or `2024-2025`, as Spotify names a file by the years its rows span."""
    if not rows:
        return "0000"
    first, last = rows[0].ended.year, rows[-1].ended.year
    return str(first) if first == last else f"{first}-{last}"


def _extended_json(records: list[dict[str, object]]) -> bytes:
    """Spotify's spelling: a JSON array, four-space indent, UTF-8 unescaped."""
    return json.dumps(records, indent=4, ensure_ascii=False).encode()


def _account_json(records: object) -> bytes:
    """Account Data's spelling: two-space indent, `"key" : value`."""
    return json.dumps(records, indent=2, ensure_ascii=False, separators=(",", " : ")).encode()


def _extras(
    world: World,
    user_id: str,
    now: datetime,
    legacy: bool,
    extended_dir: str,
    account_dir: str,
    offline_ms_from: datetime,
) -> list[tuple[str, bytes]]:
    """The files beside the history that importers skip: a video history, read-me PDFs and
    the user's account details."""
    user = world.user(user_id)
    userdata = {
        "username": user_id,
        "email": f"{user_id}@example.org",
        "country": "DE",
        "createdFromFacebook": False,
        "facebookUid": None,
        "birthdate": "1990-01-01",
        "gender": "neutral",
        "postalCode": None,
        "mobileNumber": None,
        "mobileOperator": None,
        "mobileBrand": None,
        "creationTime": "2014-03-02",
        "displayName": user.display_name,
    }
    extras = [(f"{account_dir}/Userdata.json", _account_json(userdata))]
    if legacy:
        return [(f"{LEGACY_DIR}/Read_Me_First.pdf", _PDF), *extras]
    # A video podcast: extended rows too, in a file importers must leave alone.
    episode = next(iter(world.episodes.values()), None)
    video: list[dict[str, object]] = []
    if episode is not None:
        ended = (now - timedelta(days=3)).replace(hour=2, minute=0, second=0, microsecond=0)
        names = (episode.name, world.shows[episode.show_id].name, None)
        stream = Stream(episode.id, ended, 600_000, "clickrow", "endplay", platform="ios")
        row = _Row(ended, 600_000, "episode", episode.id, names, stream)
        video = [_extended_record(row, user_id, False, offline_ms_from)]
    return [
        (f"{extended_dir}/Streaming_History_Video_{now.year}.json", _extended_json(video)),
        (f"{extended_dir}/ReadMeFirst_ExtendedStreamingHistory.pdf", _PDF),
        *extras,
        (f"{account_dir}/ReadMeFirst_AccountData.pdf", _PDF),
    ]


# --- the benchmark's synthetic history ----------------------------------------------------

_SYLLABLES = (
    "ka", "lo", "mi", "ra", "te", "su", "no", "vel", "an", "dor", "ix", "ma", "zé", "lü", "ør",
    "sin", "go", "pa", "re", "ul", "ven", "ta", "bo", "chi", "el", "fa", "ni", "os", "qu", "wy",
)  # fmt: skip
_SYNTH_PLATFORMS = (
    "android", "android", "ios", "windows", "osx", "web_player", "linux",
    "Android OS 9 API 28 (samsung, SM-G960F)", "iOS 12.1.4 (iPhone9,3)",
)  # fmt: skip
_SYNTH_COUNTRIES = ("DE",) * 12 + ("FR", "ES", "IS", "US", "GB", "NL")
# Until 2023 the export gave `offline_timestamp` in seconds, then in milliseconds.
_OFFLINE_MS_SINCE = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())


def synthetic_extended_history(
    years: int = 10,
    rows: int = 150_000,
    files: int = 12,
    seed: int = 2026,
    *,
    end: datetime = datetime(2026, 1, 1, tzinfo=UTC),
) -> list[tuple[str, bytes]]:
    """A `years`-long extended streaming history of `rows` rows in `files` files, as
    `(path inside the zip, bytes)`: Spotify's field order and spelling (the bytes equal
    `json.dumps(rows, indent=4, ensure_ascii=False)`), network identifiers included, a few
    thousand distinct tracks and some podcast episodes. Deterministic for a `seed`.

    About 12 MB a file at the defaults. Rows are spelled from pre-rendered pieces rather than by
    `json.dumps(indent=...)`, whose pure-Python encoder would take a minute for 150,000 rows.
    """
    rng = random.Random(seed)
    tracks = _synthetic_tracks(rng, artists=600, tracks=4_000)
    episodes = _synthetic_episodes(rng, shows=12, per_show=40)
    ips = [json.dumps(f"198.51.100.{n}") for n in range(1, 60)]
    platforms = [json.dumps(p, ensure_ascii=False) for p in _SYNTH_PLATFORMS]
    countries = [json.dumps(c) for c in _SYNTH_COUNTRIES]
    reasons_start = ['"trackdone"'] * 6 + ['"clickrow"', '"fwdbtn"', '"playbtn"', '"appload"']
    span = int(timedelta(days=365 * years + years // 4).total_seconds())
    last = int(end.timestamp())
    stamps = sorted(rng.sample(range(last - span, last), rows))  # distinct seconds
    pad = " " * 8
    rendered: list[tuple[int, str]] = []
    for stamp in stamps:
        roll = rng.random()
        if roll < 0.05:
            duration, middle = episodes[int(len(episodes) * rng.random() ** 2)]
        else:
            duration, middle = tracks[int(len(tracks) * rng.random() ** 3)]
        kind = rng.random()
        if kind < 0.15:
            ms, reason_end, skipped = rng.randrange(0, 30_000), '"fwdbtn"', "true"
        elif kind < 0.2:
            ms, reason_end, skipped = rng.randrange(30_000, duration), '"endplay"', "false"
        else:
            ms, reason_end, skipped = duration, '"trackdone"', "false"
        if stamp < _OFFLINE_MS_SINCE - 5 * 365 * 86_400:
            skipped = "null"  # the oldest years did not record skips
        started = stamp - ms // 1000
        offline_ts = started if stamp < _OFFLINE_MS_SINCE else started * 1000 + ms % 1000
        rendered.append(
            (
                stamp,
                f'{pad}"ts": "{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))}",\n'
                f'{pad}"platform": {platforms[int(len(platforms) * rng.random())]},\n'
                f'{pad}"ms_played": {ms},\n'
                f'{pad}"conn_country": {countries[int(len(countries) * rng.random())]},\n'
                f'{pad}"ip_addr": {ips[int(len(ips) * rng.random())]},\n'
                f"{middle}"
                f'{pad}"reason_start": {reasons_start[int(len(reasons_start) * rng.random())]},\n'
                f'{pad}"reason_end": {reason_end},\n'
                f'{pad}"shuffle": {"true" if rng.random() < 0.4 else "false"},\n'
                f'{pad}"skipped": {skipped},\n'
                f'{pad}"offline": {"true" if rng.random() < 0.05 else "false"},\n'
                f'{pad}"offline_timestamp": {offline_ts},\n'
                f'{pad}"incognito_mode": {"true" if rng.random() < 0.02 else "false"}\n',
            )
        )
    out = []
    size, extra = divmod(rows, max(1, files))
    at = 0
    for n in range(max(1, files)):
        part = rendered[at : at + size + (1 if n < extra else 0)]
        at += len(part)
        if not part:
            continue
        first, last_year = time.gmtime(part[0][0]).tm_year, time.gmtime(part[-1][0]).tm_year
        years_name = str(first) if first == last_year else f"{first}-{last_year}"
        body = "    },\n    {\n".join(text for _, text in part)
        data = ("[\n    {\n" + body + "    }\n]").encode()
        out.append((f"{EXTENDED_DIR}/Streaming_History_Audio_{years_name}_{n}.json", data))
    return out


def _synthetic_name(rng: random.Random, words: int) -> str:
    return " ".join(
        "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))).capitalize()
        for _ in range(words)
    )


def _synthetic_tracks(rng: random.Random, *, artists: int, tracks: int) -> list[tuple[int, str]]:
    """(duration, the rendered lines from track name to audiobook chapter title) per track."""
    pad = " " * 8
    artist_names = [_synthetic_name(rng, rng.randint(1, 3)) for _ in range(artists)]
    out = []
    for n in range(tracks):
        artist = artist_names[n % artists]
        album = _synthetic_name(rng, rng.randint(1, 4))
        name = _synthetic_name(rng, rng.randint(1, 5))
        uri = f"spotify:track:{_synthetic_id(rng)}"
        lines = (
            f'{pad}"master_metadata_track_name": {json.dumps(name, ensure_ascii=False)},\n'
            f'{pad}"master_metadata_album_artist_name": '
            f"{json.dumps(artist, ensure_ascii=False)},\n"
            f'{pad}"master_metadata_album_album_name": {json.dumps(album, ensure_ascii=False)},\n'
            f'{pad}"spotify_track_uri": "{uri}",\n'
            f'{pad}"episode_name": null,\n'
            f'{pad}"episode_show_name": null,\n'
            f'{pad}"spotify_episode_uri": null,\n'
        )
        out.append((rng.randrange(90_000, 420_000), lines + _NO_AUDIOBOOK))
    return out


def _synthetic_episodes(rng: random.Random, *, shows: int, per_show: int) -> list[tuple[int, str]]:
    pad = " " * 8
    out = []
    for _ in range(shows):
        show = _synthetic_name(rng, rng.randint(2, 4))
        for number in range(1, per_show + 1):
            name = f"#{number}: {_synthetic_name(rng, rng.randint(2, 6))}"
            uri = f"spotify:episode:{_synthetic_id(rng)}"
            lines = (
                f'{pad}"master_metadata_track_name": null,\n'
                f'{pad}"master_metadata_album_artist_name": null,\n'
                f'{pad}"master_metadata_album_album_name": null,\n'
                f'{pad}"spotify_track_uri": null,\n'
                f'{pad}"episode_name": {json.dumps(name, ensure_ascii=False)},\n'
                f'{pad}"episode_show_name": {json.dumps(show, ensure_ascii=False)},\n'
                f'{pad}"spotify_episode_uri": "{uri}",\n'
            )
            out.append((rng.randrange(900_000, 4_200_000), lines + _NO_AUDIOBOOK))
    return out


_NO_AUDIOBOOK = "".join(
    f'        "{key}": null,\n'
    for key in (
        "audiobook_title",
        "audiobook_uri",
        "audiobook_chapter_uri",
        "audiobook_chapter_title",
    )
)


def _synthetic_id(rng: random.Random) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(rng.choice(alphabet) for _ in range(22))
