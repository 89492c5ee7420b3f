"""What every named query should answer after a history export lands in a polled lake.

An outside checker's arithmetic, in plain Python: the plays the API served (from the stand-in's
world and the poll moments), the export's rows (parsed from the zip's own JSON files, as Spotify
sends them), contract §8's rules to merge the two, and §6's counting rules per query. Nothing
here reads the lake or imports the product.

Choices the contract leaves open are the product's (README, "Data downloads"): a track without
an id is (track name, the play's artist name), an album without an id (album name, the play's
artist name); where plays of one id carry different names the smallest is shown; `top_shows`
counts audiobooks (show = the audiobook's title); a user's overlapping gap windows count once;
an account-data row finds its track among the tracks the lake knew with credits on the days
before the import's day; `top_albums.artist_names` are the credited artists of the album's
tracks played in the range, by their lowest credit position, then name, then id.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from spotify_standin import Track, World

STREAM_MS = 30_000  # Spotify's own stream threshold (§6)
PAIR_WINDOW = timedelta(seconds=90)  # §8
RECENT_WINDOW = 50  # /me/player/recently-played serves only the newest 50 plays
NETWORK_FIELDS = ("ip_addr", "ip_addr_decrypted", "user_agent_decrypted", "username")
EXTENDED_DIR = "Spotify Extended Streaming History/"
ACCOUNT_DIR = "Spotify Account Data/"


# --- what the lake knows about the catalogue ----------------------------------------------------


@dataclass
class Knowledge:
    """The catalogue as the lake's `*_latest` views show it: tracks with credits, their
    artists' names and genres, their albums' names."""

    world: World
    credited: set[str] = field(default_factory=set)  # track ids with credits

    def track(self, track_id: str | None) -> Track | None:
        return self.world.tracks[track_id] if track_id in self.credited else None

    def name_index(self) -> dict[tuple[str, str], set[str]]:
        """(track name, credited artist name) → credited track ids."""
        index: dict[tuple[str, str], set[str]] = defaultdict(set)
        for track_id in self.credited:
            track = self.world.tracks[track_id]
            for artist_id in track.artist_ids:
                index[(track.name, self.world.artists[artist_id].name)].add(track_id)
        return index


def api_served_tracks(world: World, user_id: str, daily: Iterable[datetime]) -> set[str]:
    """Tracks the daily datasets showed with their credits: top tracks, saves, and the items of
    the playlists the user may read."""
    user = world.user(user_id)
    found: set[str] = set()
    for moment in daily:
        for time_range in ("short_term", "medium_term", "long_term"):
            found.update(user.top_at("tracks", time_range, moment))
        found.update(save.track_id for save in user.saves_at(moment))
        for playlist_id in user.playlist_ids:
            playlist = world.playlist(playlist_id)
            if playlist.readable_by(user_id) and not playlist.is_editorial:
                found.update(e.item for e in playlist.entries_at(moment) if e.item)
    return {t for t in found if t in world.tracks}


# --- the API's side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiPlay:
    played_at: datetime
    item: str  # a track id or a local file's key
    track_id: str | None  # None for a local file


@dataclass(frozen=True)
class Gap:
    start: datetime
    end: datetime


def polled(
    world: World, user_id: str, polls: Iterable[datetime]
) -> tuple[list[ApiPlay], list[Gap]]:
    """Every play some poll saw (the newest 50 visible at its moment), and the `possible_gap`
    windows: from the newest play known before a poll to the oldest it got, when that is newer."""
    user = world.user(user_id)
    seen: dict[datetime, ApiPlay] = {}
    gaps: list[Gap] = []
    watermark: datetime | None = None
    for moment in sorted(polls):
        window = user.history_at(moment, RECENT_WINDOW)
        if not window:
            continue
        oldest = min(p.played_at for p in window)
        newest = max(p.played_at for p in window)
        if watermark is not None and oldest > watermark:
            gaps.append(Gap(watermark, oldest))
        watermark = newest if watermark is None else max(watermark, newest)
        for play in window:
            track_id = play.item if play.item in world.tracks else None
            seen[play.played_at] = ApiPlay(play.played_at, play.item, track_id)
    return sorted(seen.values(), key=lambda p: p.played_at), gaps


# --- the export's side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRow:
    """One history row as §8 reads it (network identifiers dropped)."""

    file: str
    index: int  # position in the file's JSON array
    format: str  # extended | account
    ts: datetime
    ms_played: int | None
    item_type: str  # track | episode | audiobook | unknown
    uri: str | None
    track_id: str | None
    track_name: str | None
    artist_name: str | None
    album_name: str | None
    episode_id: str | None
    episode_name: str | None
    show_name: str | None
    skipped: bool | None
    identity: str  # every remaining field: equal identities are one play


@dataclass(frozen=True)
class ImportedFile:
    name: str
    rows: int
    first_ts: datetime | None
    last_ts: datetime | None


def _uri_id(uri: str | None) -> str | None:
    return uri.rsplit(":", 1)[-1] if uri else None


def _parse_ts(text: str) -> datetime:
    if "T" in text:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)  # account: minutes


def read_export(zip_bytes: bytes) -> tuple[list[ExportRow], list[ImportedFile]]:
    """The history rows of `my_spotify_data.zip` and one entry per history file."""
    rows: list[ExportRow] = []
    files: list[ImportedFile] = []
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for name in archive.namelist():
            base = name.rsplit("/", 1)[-1]
            if name.startswith(EXTENDED_DIR) and base.startswith("Streaming_History_Audio_"):
                parse = _extended
            elif name.startswith(ACCOUNT_DIR) and base.startswith("StreamingHistory_music_"):
                parse = _account_music
            elif name.startswith(ACCOUNT_DIR) and base.startswith("StreamingHistory_podcast_"):
                parse = _account_podcast
            else:
                continue  # video history, read-me files, account details
            records = json.loads(archive.read(name))
            parsed = [parse(name, n, record) for n, record in enumerate(records)]
            rows += parsed
            stamps = [r.ts for r in parsed]
            files.append(
                ImportedFile(
                    name, len(parsed), min(stamps, default=None), max(stamps, default=None)
                )
            )
    return rows, files


def _identity(fmt: str, record: dict) -> str:
    kept = {k: v for k, v in record.items() if k not in NETWORK_FIELDS}
    return fmt + json.dumps(kept, sort_keys=True, ensure_ascii=False)


def _extended(file: str, index: int, record: dict) -> ExportRow:
    track_uri = record.get("spotify_track_uri")
    episode_uri = record.get("spotify_episode_uri")
    chapter_uri = record.get("audiobook_chapter_uri")
    if track_uri:
        item_type, uri = "track", track_uri
    elif episode_uri:
        item_type, uri = "episode", episode_uri
    elif chapter_uri or record.get("audiobook_uri"):
        item_type, uri = "audiobook", chapter_uri
    else:
        item_type, uri = "unknown", None
    book = item_type == "audiobook"
    return ExportRow(
        file=file,
        index=index,
        format="extended",
        ts=_parse_ts(record["ts"]),
        ms_played=record.get("ms_played"),
        item_type=item_type,
        uri=uri,
        track_id=_uri_id(track_uri),
        track_name=record.get("master_metadata_track_name"),
        artist_name=record.get("master_metadata_album_artist_name"),
        album_name=record.get("master_metadata_album_album_name"),
        episode_id=_uri_id(chapter_uri if book else episode_uri),
        episode_name=record.get("audiobook_chapter_title" if book else "episode_name"),
        show_name=record.get("audiobook_title" if book else "episode_show_name"),
        skipped=record.get("skipped"),
        identity=_identity("extended", record),
    )


def _account_music(file: str, index: int, record: dict) -> ExportRow:
    return ExportRow(
        file=file,
        index=index,
        format="account",
        ts=_parse_ts(record["endTime"]),
        ms_played=record.get("msPlayed"),
        item_type="track",
        uri=None,
        track_id=None,  # found by name: see `resolve_account_rows`
        track_name=record.get("trackName"),
        artist_name=record.get("artistName"),
        album_name=None,
        episode_id=None,
        episode_name=None,
        show_name=None,
        skipped=None,
        identity=_identity("account", record),
    )


def _account_podcast(file: str, index: int, record: dict) -> ExportRow:
    return ExportRow(
        file=file,
        index=index,
        format="account",
        ts=_parse_ts(record["endTime"]),
        ms_played=record.get("msPlayed"),
        item_type="episode",
        uri=None,
        track_id=None,
        track_name=None,
        artist_name=None,
        album_name=None,
        episode_id=None,
        episode_name=record.get("episodeName"),
        show_name=record.get("podcastName"),
        skipped=None,
        identity=_identity("podcast", record),
    )


def resolve_account_rows(rows: list[ExportRow], known: Knowledge) -> list[ExportRow]:
    """An account-data music row takes the id of the one known track with its track name and a
    credited artist of its artist name (§8); none when there are zero or several."""
    index = known.name_index()
    resolved = []
    for row in rows:
        if row.format == "account" and row.item_type == "track":
            found = index.get((row.track_name or "", row.artist_name or ""), set())
            row = replace(row, track_id=next(iter(found)) if len(found) == 1 else None)
        resolved.append(row)
    return resolved


def distinct_rows(rows: list[ExportRow]) -> list[ExportRow]:
    """§8: identical rows are one play; of different rows with one `ts`, the larger `ms_played`
    wins, then the URI that sorts first (no URI last)."""
    unique = list({row.identity: row for row in rows}.values())
    by_ts: dict[datetime, list[ExportRow]] = defaultdict(list)
    for row in unique:
        by_ts[row.ts].append(row)
    return [
        min(group, key=lambda r: (-(r.ms_played or 0), r.uri is None, r.uri or ""))
        for group in by_ts.values()
    ]


# --- the lake's plays ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LakePlay:
    """A row of `plays` as §8 says it should be."""

    played_at: datetime
    source: str  # api | export | both
    item_type: str
    track_id: str | None
    ms_played: int | None
    skipped: bool | None
    track_name: str | None  # the export's names (None for plays only the API saw)
    artist_name: str | None
    album_name: str | None
    episode_id: str | None
    episode_name: str | None
    show_name: str | None

    @property
    def counted(self) -> bool:
        """§6: music, of unknown length or at least 30 s."""
        music = self.item_type in ("track", "unknown")
        return music and (self.ms_played is None or self.ms_played >= STREAM_MS)


def merge(api: list[ApiPlay], export: list[ExportRow]) -> list[LakePlay]:
    """§8's pairing: an export row and an API play of the same track are one play when
    `played_at` is within 90 s of the row's end (`ts`) or its start (`ts - ms_played`); one to
    one, the nearest pairs first, ties to the earlier `ts`."""
    by_track: dict[str, list[ApiPlay]] = defaultdict(list)
    for play in api:
        if play.track_id:
            by_track[play.track_id].append(play)
    candidates = []
    for n, row in enumerate(export):
        for play in by_track.get(row.track_id or "", []) if row.track_id else []:
            start = row.ts - timedelta(milliseconds=row.ms_played or 0)
            distance = min(abs(play.played_at - row.ts), abs(play.played_at - start))
            if distance <= PAIR_WINDOW:
                candidates.append((distance, row.ts, play.played_at, n, play))
    paired_rows: dict[int, ApiPlay] = {}
    taken: set[datetime] = set()
    for _, _, played_at, n, play in sorted(candidates, key=lambda c: c[:4]):
        if n not in paired_rows and played_at not in taken:
            paired_rows[n] = play
            taken.add(played_at)
    plays: dict[datetime, LakePlay] = {}
    for play in api:
        if play.played_at not in taken:
            plays[play.played_at] = LakePlay(
                play.played_at, "api", "track", play.track_id, None, None,
                None, None, None, None, None, None,
            )  # fmt: skip
    for n, row in enumerate(export):
        partner = paired_rows.get(n)
        if partner is None and row.ts in plays:
            continue  # an unpaired row at an API play's very moment: the API's play stands
        plays[partner.played_at if partner else row.ts] = LakePlay(
            played_at=partner.played_at if partner else row.ts,
            source="both" if partner else "export",
            item_type=row.item_type,
            track_id=row.track_id,
            ms_played=row.ms_played,
            skipped=row.skipped,
            track_name=row.track_name,
            artist_name=row.artist_name,
            album_name=row.album_name,
            episode_id=row.episode_id,
            episode_name=row.episode_name,
            show_name=row.show_name,
        )
    return sorted(plays.values(), key=lambda p: p.played_at)


# --- the named queries (§6) ---------------------------------------------------------------------


def _round(numerator: int, denominator: int, places: int) -> float:
    """`round(CAST(numerator AS DOUBLE) / denominator, places)` as DuckDB computes it: in
    doubles, the scaled value rounded half away from zero (so 2,324,700 ms is 38.74 minutes,
    the double 38.745 lying just below the half, but 578,700 ms is 9.65)."""
    scale = 10.0**places
    scaled = (numerator / denominator) * scale
    return float(Decimal(scaled).to_integral_value(rounding=ROUND_HALF_UP)) / scale


def _minutes(total_ms: int) -> float:
    return _round(total_ms, 60000, 2)


def _by_name(name: str | None, ident: str | None) -> tuple:
    """Ties order by name, then id; a null sorts last."""
    return (name is None, name or "", ident is None, ident or "")


class Answers:
    """Expected rows of every named query for one lake state."""

    def __init__(
        self, plays: list[LakePlay], known: Knowledge, gaps: list[Gap], imports: list[ImportedFile]
    ) -> None:
        self.plays = plays
        self.known = known
        self.gaps = gaps
        self.imports = imports
        self.world = known.world

    # helpers ------------------------------------------------------------------------------------

    def _counted(self, start: date, end: date) -> list[LakePlay]:
        return [p for p in self.plays if p.counted and start <= p.played_at.date() <= end]

    def _played_ms(self, play: LakePlay) -> int:
        if play.ms_played is not None:
            return play.ms_played
        track = self.known.track(play.track_id)
        return track.duration_ms if track else 0

    def _track_name(self, play: LakePlay) -> str | None:
        track = self.known.track(play.track_id)
        return track.name if track else play.track_name

    def _track_key(self, play: LakePlay) -> tuple | None:
        """A track is its id, or its name with the play's artist name; else no track."""
        if play.track_id is not None:
            return ("id", play.track_id)
        if play.track_name is not None:
            return ("name", play.track_name, play.artist_name)
        return None

    def _credits(self, play: LakePlay) -> list[tuple[str | None, str | None, int]]:
        """(artist id, name, position): the track's credits, else the play's artist name."""
        track = self.known.track(play.track_id)
        if track is not None:
            return [(a, self.world.artists[a].name, n) for n, a in enumerate(track.artist_ids, 1)]
        return [(None, play.artist_name, 1)] if play.artist_name is not None else []

    @staticmethod
    def _artist_key(artist_id: str | None, name: str | None) -> tuple:
        return ("id", artist_id) if artist_id is not None else ("name", name)

    def _artist_names(self, plays: list[LakePlay]) -> str | None:
        """A track's artist names: its credits in order, else the least play artist name."""
        track = self.known.track(plays[0].track_id)
        if track is not None:
            return ", ".join(self.world.artists[a].name for a in track.artist_ids)
        names = [p.artist_name for p in plays if p.artist_name is not None]
        return min(names) if names else None

    def _per_track(self, plays: list[LakePlay]) -> dict[tuple, list[LakePlay]]:
        grouped: dict[tuple, list[LakePlay]] = defaultdict(list)
        for play in plays:
            key = self._track_key(play)
            if key is not None:
                grouped[key].append(play)
        return grouped

    def _least_name(self, plays: list[LakePlay], name: Callable[[LakePlay], str | None]):
        names = [n for n in map(name, plays) if n is not None]
        return min(names) if names else None

    # queries ------------------------------------------------------------------------------------

    def daily_listening(self, start: date, end: date) -> list[dict]:
        by_day: dict[date, list[LakePlay]] = defaultdict(list)
        for play in self._counted(start, end):
            by_day[play.played_at.date()].append(play)
        return [
            {
                "date": day.isoformat(),
                "plays": len(plays),
                "minutes": _minutes(sum(map(self._played_ms, plays))),
                "distinct_tracks": len({k for p in plays if (k := self._track_key(p))}),
                "distinct_artists": len(
                    {self._artist_key(a, n) for p in plays for a, n, _ in self._credits(p)}
                ),
            }
            for day, plays in sorted(by_day.items())
        ]

    def top_artists(self, start: date, end: date, limit: int = 10) -> list[dict]:
        plays: Counter[tuple] = Counter()
        total: Counter[tuple] = Counter()
        names: dict[tuple, tuple[str | None, str | None]] = {}
        for play in self._counted(start, end):
            for key, (artist_id, name) in {
                self._artist_key(a, n): (a, n) for a, n, _ in self._credits(play)
            }.items():
                plays[key] += 1
                total[key] += self._played_ms(play)
                names[key] = (artist_id, name)
        rows = [
            {
                "artist_id": names[key][0],
                "artist_name": names[key][1],
                "plays": n,
                "minutes": _minutes(total[key]),
            }
            for key, n in plays.items()
        ]
        rows.sort(key=lambda r: (-r["plays"], *_by_name(r["artist_name"], r["artist_id"])))
        return rows[:limit]

    def top_tracks(self, start: date, end: date, limit: int = 10) -> list[dict]:
        rows = []
        for key, plays in self._per_track(self._counted(start, end)).items():
            rows.append(
                {
                    "track_id": key[1] if key[0] == "id" else None,
                    "track_name": self._least_name(plays, self._track_name),
                    "artist_names": self._artist_names(plays),
                    "plays": len(plays),
                    "minutes": _minutes(sum(map(self._played_ms, plays))),
                }
            )
        rows.sort(
            key=lambda r: (
                -r["plays"], *_by_name(r["track_name"], r["track_id"]), r["artist_names"] or ""
            )
        )  # fmt: skip
        return rows[:limit]

    def top_albums(self, start: date, end: date, limit: int = 10) -> list[dict]:
        grouped: dict[tuple, list[LakePlay]] = defaultdict(list)
        for play in self._counted(start, end):
            track = self.known.track(play.track_id)
            if track is not None:
                grouped[("id", track.album_id)].append(play)
            elif play.album_name is not None:
                grouped[("name", play.album_name, play.artist_name)].append(play)
        rows = []
        for key, plays in grouped.items():
            if key[0] == "id":
                album_id, album_name = key[1], self.world.albums[key[1]].name
            else:
                album_id, album_name = None, key[1]
            first: dict[tuple, tuple[int, str | None, str | None]] = {}
            for play in plays:
                for artist_id, name, position in self._credits(play):
                    artist = (artist_id, name)
                    if artist not in first or position < first[artist][0]:
                        first[artist] = (position, name, artist_id)
            ordered = sorted(
                (v for v in first.values() if v[1] is not None),
                key=lambda v: (v[0], *_by_name(v[1], v[2])),
            )
            rows.append(
                {
                    "album_id": album_id,
                    "album_name": album_name,
                    "artist_names": ", ".join(v[1] for v in ordered) if ordered else None,
                    "plays": len(plays),
                    "minutes": _minutes(sum(map(self._played_ms, plays))),
                }
            )
        rows.sort(
            key=lambda r: (
                -r["plays"], *_by_name(r["album_name"], r["album_id"]), r["artist_names"] or ""
            )
        )  # fmt: skip
        return rows[:limit]

    def genres(self, start: date, end: date, limit: int = 10) -> list[dict]:
        plays = self._counted(start, end)
        counts: Counter[str] = Counter()
        for play in plays:
            counts.update(
                {
                    g
                    for artist_id, _, _ in self._credits(play)
                    if artist_id is not None
                    for g in self.world.artists[artist_id].genres
                }
            )
        rows = [
            {"genre": g, "plays": n, "share": _round(n, len(plays), 4)} for g, n in counts.items()
        ]
        rows.sort(key=lambda r: (-r["plays"], r["genre"]))
        return rows[:limit]

    def listening_clock(self, start: date, end: date, tz: str = "UTC") -> list[dict]:
        zone = ZoneInfo(tz)
        plays: Counter[int] = Counter()
        total: Counter[int] = Counter()
        for play in self._counted(start, end):
            hour = play.played_at.astimezone(zone).hour
            plays[hour] += 1
            total[hour] += self._played_ms(play)
        return [{"hour": h, "plays": plays[h], "minutes": _minutes(total[h])} for h in range(24)]

    def weekday_hour(self, start: date, end: date, tz: str = "UTC") -> list[dict]:
        zone = ZoneInfo(tz)
        plays: Counter[tuple[int, int]] = Counter()
        total: Counter[tuple[int, int]] = Counter()
        for play in self._counted(start, end):
            local = play.played_at.astimezone(zone)
            cell = (local.isoweekday(), local.hour)
            plays[cell] += 1
            total[cell] += self._played_ms(play)
        return [
            {"weekday": d, "hour": h, "plays": plays[d, h], "minutes": _minutes(total[d, h])}
            for d in range(1, 8)
            for h in range(24)
        ]

    def discoveries(self, start: date, end: date) -> list[dict]:
        everything = [p for p in self.plays if p.counted]  # first plays: the whole lake
        artist_first: dict[tuple, str] = {}
        track_first: dict[tuple, str] = {}
        for play in sorted(everything, key=lambda p: p.played_at):
            month = play.played_at.strftime("%Y-%m")
            for artist_id, name, _ in self._credits(play):
                artist_first.setdefault(self._artist_key(artist_id, name), month)
            key = self._track_key(play)
            if key is not None:
                track_first.setdefault(key, month)
        new_artists = Counter(artist_first.values())
        new_tracks = Counter(track_first.values())
        months: dict[str, int] = {}
        for play in self._counted(start, end):
            month = play.played_at.strftime("%Y-%m")
            months.setdefault(month, 0)
            keys = {self._artist_key(a, n) for a, n, _ in self._credits(play)}
            if any(artist_first[k] == month for k in keys):
                months[month] += 1
        return [
            {
                "month": month,
                "new_artists": new_artists[month],
                "new_tracks": new_tracks[month],
                "plays_of_new": months[month],
            }
            for month in sorted(months)
        ]

    def top_shows(self, start: date, end: date, limit: int = 10) -> list[dict]:
        shows: dict[str | None, list[LakePlay]] = defaultdict(list)
        for play in self.plays:
            if (
                play.item_type in ("episode", "audiobook")
                and (play.ms_played is None or play.ms_played >= STREAM_MS)
                and start <= play.played_at.date() <= end
            ):
                shows[play.show_name].append(play)
        rows = [
            {
                "show_name": show,
                "episodes": len({p.episode_id or ("name", p.episode_name) for p in plays}),
                "plays": len(plays),
                "minutes": _minutes(sum(p.ms_played or 0 for p in plays)),
            }
            for show, plays in shows.items()
        ]
        rows.sort(key=lambda r: (-r["minutes"], r["show_name"] is None, r["show_name"] or ""))
        return rows[:limit]

    def skips(self, start: date, end: date, limit: int = 10) -> list[dict]:
        music = [
            p
            for p in self.plays
            if p.item_type in ("track", "unknown")
            and p.ms_played is not None
            and start <= p.played_at.date() <= end
        ]
        rows = []
        for key, plays in self._per_track(music).items():
            if len(plays) < 3:
                continue
            skipped = sum(1 for p in plays if p.ms_played < STREAM_MS or p.skipped)
            rows.append(
                {
                    "track_id": key[1] if key[0] == "id" else None,
                    "track_name": self._least_name(plays, self._track_name),
                    "artist_names": self._artist_names(plays),
                    "plays": len(plays),
                    "skipped": skipped,
                    "skip_rate": _round(skipped, len(plays), 4),
                }
            )
        rows.sort(
            key=lambda r: (
                -r["skip_rate"], -r["plays"], *_by_name(r["track_name"], r["track_id"]),
                r["artist_names"] or "",
            )
        )  # fmt: skip
        return rows[:limit]

    def coverage(self, start: date, end: date) -> list[dict]:
        open_gaps = [
            g
            for g in self.gaps
            if not any(
                f.first_ts is not None and f.first_ts <= g.start and f.last_ts >= g.end
                for f in self.imports
            )
        ]
        rows = []
        day = start
        while day <= end:
            counted = self._counted(day, day)
            sources = Counter(p.source for p in counted)
            day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            rows.append(
                {
                    "date": day.isoformat(),
                    "plays": len(counted),
                    "api_plays": sources["api"],
                    "export_plays": sources["export"],
                    "both_plays": sources["both"],
                    "open_gap_minutes": _minutes(
                        _union_ms(open_gaps, day_start, day_start + timedelta(days=1))
                    ),
                }
            )
            day += timedelta(days=1)
        return rows


def _union_ms(gaps: list[Gap], start: datetime, end: datetime) -> int:
    """Milliseconds of [start, end) inside any of `gaps` (overlaps count once)."""
    spans = sorted((max(g.start, start), min(g.end, end)) for g in gaps)
    total, reach = timedelta(0), start
    for lo, hi in spans:
        lo = max(lo, reach)
        if hi > lo:
            total += hi - lo
            reach = hi
    return total // timedelta(milliseconds=1)
