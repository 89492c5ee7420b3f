"""The acceptance test's own world, its timeline of runs, and what the product should answer.

The world is deliberately not the demo world: other ids, other names (non-ASCII, quotes,
commas), and every odd case of contract §1 that the lake must classify. `expected_*` compute
each named query's rows (contract §6) from this world with plain Python — never from the lake
and never from the product's SQL — so the test checks the product against an independent
reading of the contract.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from spotify_standin import (
    Album,
    Artist,
    Episode,
    LocalFile,
    Playlist,
    PlaylistEntry,
    Show,
    Track,
    User,
    World,
    spotify_id,
)

LISTENER = "lena.k2026"  # the SPOTIFY_REFRESH_TOKEN user
OTHER_OWNER = "dj.other"  # connected with `spotify-etl connect`
USERS = (LISTENER, OTHER_OWNER)
# Central Europe leaves summer time at 01:00 UTC on D1: a tz that moves plays by 2 hours, then 1.
D0, D1, D2, D3 = (date(2026, 10, day) for day in (24, 25, 26, 27))
RECENT_WINDOW = 50  # /me/player/recently-played serves only the newest 50 plays


def at(day: date, hour: int, minute: int = 0, second: int = 0, ms: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, ms * 1000, tzinfo=UTC)


# --- the catalogue ---------------------------------------------------------------------------

SIGRUN = Artist(spotify_id("h6-sigrun"), "Sigrún Þórs", ("icelandic indie", "art pop", "dream pop"))
COMMA = Artist(spotify_id("h6-comma"), 'The "Comma, Club"', ())  # known to have no genres
ZOE = Artist(spotify_id("h6-zoe"), "Zoë & Ölaf", ("dream pop",))
NANDU = Artist(spotify_id("h6-nandu"), "Ñandú Sound", ("cumbia", "música tropical"))
# Spotify re-tags an artist between the snapshots: the lake's latest genres must win.
NANDU_RETAGGED = Artist(NANDU.id, NANDU.name, ("cumbia", "nu-cumbia", "latin"))
BENE = Artist(spotify_id("h6-bene"), "Bénédicte, Q.", ("chanson",))  # only ever a top artist
# Their genres stay unknown: /artists/{id} answers 404 for one, no `genres` field for the other.
GHOST = Artist(spotify_id("h6-ghost"), "Ghost (removed)")
MUTE = Artist(spotify_id("h6-mute"), "Mute, the")
ARTISTS = (SIGRUN, COMMA, ZOE, NANDU, BENE, GHOST, MUTE)

NORDLYS = Album(spotify_id("h6-nordlys"), "Nordlys, Vol. 1", (SIGRUN.id,), "2019-02-14")
QUOTES = Album(spotify_id("h6-quotes"), 'Quotes "&" Commas', (COMMA.id, ZOE.id), "1999-07")
RIO = Album(spotify_id("h6-rio"), "Río Abajo", (NANDU.id,), "1987", album_type="single")
CHANSONS = Album(spotify_id("h6-chansons"), "Chansons d'hiver", (BENE.id,), "2005-05-05")
ALBUMS = (NORDLYS, QUOTES, RIO, CHANSONS)

T1 = Track(spotify_id("h6-t1"), "Norðurljós", NORDLYS.id, (SIGRUN.id,), 201_017, isrc="ISH6T1")
T2 = Track(spotify_id("h6-t2"), 'Say "Yes", Maybe', QUOTES.id, (COMMA.id, ZOE.id), 187_543)
T3 = Track(spotify_id("h6-t3"), "Tres, Dos, Uno", RIO.id, (NANDU.id, SIGRUN.id, COMMA.id), 240_311)
T4 = Track(spotify_id("h6-t4"), "Hvíld", NORDLYS.id, (SIGRUN.id, ZOE.id), 333_331, track_number=2)
T5 = Track(spotify_id("h6-t5"), "Café Noir", CHANSONS.id, (BENE.id,), 150_007)
T6 = Track(spotify_id("h6-t6"), "Ölaf's Theme", QUOTES.id, (ZOE.id,), 99_989, track_number=2)
T7 = Track(spotify_id("h6-t7"), 'Ghost & Mute, "Live"', RIO.id, (GHOST.id, MUTE.id, ZOE.id), 61_001)
TRACKS = (T1, T2, T3, T4, T5, T6, T7)
GONE = spotify_id("h6-gone")  # a track id the catalogue no longer has
# Enough tracks to need a second page (50 a page) of saves, top tracks and playlist items.
FILLERS = tuple(
    Track(spotify_id(f"h6-filler-{i}"), f"Filler №{i}", CHANSONS.id, (BENE.id,), 100_000 + i)
    for i in range(60)
)

DEMO_TAKE = LocalFile("local:h6-demo", "my demo, take 2", "Home Recordings", ("Me",), 120_000)
TALK = Show(spotify_id("h6-show"), "Pódcast Talk", "Q & A Media")
EPISODE = Episode(
    spotify_id("h6-ep1"), 'Épisode 1: Hello, "World"', TALK.id, 1_800_000, "2026-09-30"
)

ROAD_TRIP = spotify_id("h6-roadtrip")  # owned; changes between the two snapshots
QUIET = spotify_id("h6-quiet")  # owned; never changes
BIG_MIX = spotify_id("h6-bigmix")  # owned; three pages of items, changes between snapshots
FILLED_LATER = spotify_id("h6-filled")  # the other user's: empty at first, then two items
# The other user's own small playlists: enough for a second page of /me/playlists.
SMALL_ONES = tuple(spotify_id(f"h6-small-{i}") for i in range(50))
FOLLOWED = spotify_id("h6-followed")  # someone else's: items answer 403
EDITORIAL = "37i9dQZF1DWZeKCadgRdKQ"  # Spotify's own: 404 to a Development-Mode app
# Contents and rankings change between every two snapshot days, so that comparing with any
# snapshot but the latest earlier one shows.
EARLY_CHANGE = at(D1, 12)
PLAYLIST_CHANGE = at(D2, 12)
TOP_CHANGE = at(D2, 12)
SAME_DAY_CHANGE = at(D3, 8, 30)  # and again on D3, between two snapshots of that day
GENRE_CHANGE = at(D2, 12)  # NANDU_RETAGGED from then on

# --- the timeline of runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One `spotify-etl run`: when, which datasets (None: all), for whom, and faults to inject."""

    at: datetime
    datasets: tuple[str, ...] | None = ("plays",)
    rate_limited: str | None = None  # a path regex answered 429 with Retry-After: 7200
    flaky: str | None = None  # a path regex answered 503 once: worth one retry
    users: tuple[str, ...] | None = None  # None: every connected user

    @property
    def polls_history(self) -> bool:
        """True when this run reads the history and Spotify lets it."""
        refused = self.rate_limited is not None and "recently-played" in self.rate_limited
        return (self.datasets is None or "plays" in self.datasets) and not refused

    def runs_for(self, user_id: str) -> bool:
        return self.users is None or user_id in self.users

    @property
    def expected_status(self) -> str:
        if self.rate_limited is None:
            return "succeeded"
        return "partial"  # a lockout: the run stops with reason `cooldown` (contract §9)

    def argv(self) -> list[str]:
        argv = ["run", "--at", self.at.strftime("%Y-%m-%dT%H:%M:%SZ")]
        if self.users:
            argv += ["--users", *self.users]
        return [*argv, "--datasets", *self.datasets] if self.datasets else argv


SNAPSHOT_0 = Run(at(D1, 6), None)
SNAPSHOT_1 = Run(at(D2, 6), None)
SNAPSHOT_2 = Run(at(D3, 6), None)
RATE_LIMITED = Run(at(D2, 12), ("plays", "saved_tracks"), rate_limited=r"^/v1/me/tracks")
REFUSED = Run(at(D1, 13), rate_limited=r"^/v1/me/player/recently-played")  # nothing done
RERUN = Run(at(D3, 6, 30), None)  # nothing changed since SNAPSHOT_2
LATER_SAME_DAY = Run(at(D3, 9), None)  # its snapshots replace SNAPSHOT_2's for D3
# Run last, yet earlier by `run_at` than LATER_SAME_DAY: D3's snapshots stay LATER_SAME_DAY's.
BACKDATED = Run(at(D3, 7), None)
RUNS: tuple[Run, ...] = (
    Run(at(D1, 3)),
    SNAPSHOT_0,
    *(Run(at(D1, hour)) for hour in range(9, 13, 3)),
    REFUSED,
    *(Run(at(D1, hour)) for hour in range(15, 24, 3)),
    Run(at(D2, 0)),
    Run(at(D2, 3)),
    SNAPSHOT_1,
    Run(at(D2, 9)),
    RATE_LIMITED,
    Run(at(D2, 15), flaky=r"^/v1/me/player/recently-played"),
    Run(at(D2, 18)),
    Run(at(D2, 21), users=(OTHER_OWNER,)),
    Run(at(D3, 0)),
    Run(at(D3, 3)),
    SNAPSHOT_2,
    RERUN,
    LATER_SAME_DAY,
    BACKDATED,
)
SNAPSHOTS = tuple(run for run in RUNS if run.datasets is None)  # RUNS is in execution order

# --- the world --------------------------------------------------------------------------------


def build_world() -> World:
    """A fresh world (the stand-in mutates nothing, but each test module gets its own)."""
    world = World(start=at(D1, 0))
    world.add(*ARTISTS, *ALBUMS, *TRACKS, *FILLERS)
    world.add(DEMO_TAKE, TALK, EPISODE)
    listener = User(LISTENER, "Léna K.")
    other = User(OTHER_OWNER, "DJ Other")
    world.add(listener, other)  # the listener first: the stand-in authorizes the first user
    _playlists(world)
    listener.playlist_ids = [ROAD_TRIP, FOLLOWED, EDITORIAL, QUIET, BIG_MIX]
    other.playlist_ids = [FOLLOWED, EDITORIAL, FILLED_LATER, *SMALL_ONES]
    _history(listener)
    _other_history(other)
    _tops(listener)
    _other_tops(other)
    for minute, filler in enumerate(FILLERS):
        listener.save(filler.id, at(D0, 6, minute))
    listener.save(T1.id, at(D0, 8))
    listener.save(T2.id, at(D1, 10))
    listener.save(T3.id, at(D2, 9))  # between the snapshots: first seen by SNAPSHOT_2
    other.save(T5.id, at(D1, 20))
    return world


def advance_world(world: World, moment: datetime) -> None:
    """What the stand-in's timeline cannot say by itself: catalogue changes up to `moment`."""
    if moment >= GENRE_CHANGE:
        world.add(NANDU_RETAGGED)


def _entry(item: str | None, added: datetime | None, by: str | None = LISTENER) -> PlaylistEntry:
    return PlaylistEntry(item, added, by if added is not None else None)


def _playlists(world: World) -> None:
    long_ago = at(D0, 9)
    road = Playlist(ROAD_TRIP, 'Road trip, "2026" 🚗', LISTENER, public=True)
    road.set_items([_entry(T3.id, long_ago), _entry(T1.id, long_ago), _entry(T6.id, long_ago)])
    road.set_items(
        [
            _entry(T1.id, long_ago),
            _entry(EPISODE.id, long_ago),
            _entry(None, None),  # no longer available: keeps its slot, has no row
            _entry(DEMO_TAKE.key, None),  # local file, added_at/added_by null
            _entry(T2.id, long_ago),
            _entry(T3.id, long_ago),
            _entry(T1.id, long_ago),  # the same track twice
        ],
        at=EARLY_CHANGE,
    )
    road.set_items(
        [
            _entry(T2.id, long_ago),
            _entry(EPISODE.id, long_ago),
            _entry(DEMO_TAKE.key, None),
            _entry(T1.id, long_ago),
            _entry(T4.id, PLAYLIST_CHANGE),
            _entry(T1.id, long_ago),
        ],
        at=PLAYLIST_CHANGE,
    )
    road.set_items(
        [
            _entry(T4.id, PLAYLIST_CHANGE),
            _entry(T2.id, long_ago),
            _entry(EPISODE.id, long_ago),
            _entry(T6.id, SAME_DAY_CHANGE),
        ],
        at=SAME_DAY_CHANGE,
    )
    quiet = Playlist(QUIET, "Quiet, please", LISTENER)
    quiet.set_items([_entry(T6.id, long_ago), _entry(T5.id, long_ago)])
    followed = Playlist(FOLLOWED, "Other's mix", OTHER_OWNER, public=True)
    followed.set_items([_entry(T5.id, long_ago, OTHER_OWNER)])
    editorial = Playlist(EDITORIAL, "Deep Focus", "spotify", owner_name="Spotify", public=True)
    editorial.set_items([_entry(T1.id, long_ago, "spotify")])
    fillers = [_entry(f.id, long_ago) for f in FILLERS]
    big = Playlist(BIG_MIX, "Big mix (113)", LISTENER)
    # The episode at 51 and T4 at 102 live on later pages; the first 50 fillers come twice.
    first = [*fillers[:50], _entry(EPISODE.id, long_ago), *fillers[:50], _entry(T4.id, long_ago)]
    big.set_items([*first, *fillers[50:], _entry(None, None)])
    second = [*fillers[1:50], _entry(EPISODE.id, long_ago), *fillers[:50]]
    big.set_items(
        [*second, _entry(T4.id, long_ago), _entry(T5.id, PLAYLIST_CHANGE), *fillers[50:]],
        at=PLAYLIST_CHANGE,
    )
    filled = Playlist(FILLED_LATER, "Empty (for now)", OTHER_OWNER)
    filled.set_items([])
    later = [_entry(T1.id, PLAYLIST_CHANGE, OTHER_OWNER), _entry(DEMO_TAKE.key, None)]
    filled.set_items(later, at=PLAYLIST_CHANGE)
    world.add(road, quiet, followed, editorial, big, filled)
    for number, playlist_id in enumerate(SMALL_ONES):
        small = Playlist(playlist_id, f"Small #{number}", OTHER_OWNER)
        small.set_items([_entry(TRACKS[number % len(TRACKS)].id, long_ago, OTHER_OWNER)])
        world.add(small)


def _history(user: User) -> None:
    road = f"spotify:playlist:{ROAD_TRIP}"
    followed = f"spotify:playlist:{FOLLOWED}"
    plays: list[tuple[datetime, str, datetime | None, str | None]] = [
        (at(D0, 21, 5), T1.id, None, f"spotify:album:{NORDLYS.id}"),
        (at(D0, 23, 40), T3.id, None, road),  # 05:10 on D1 in Asia/Kolkata
        (at(D0, 23, 58), DEMO_TAKE.key, None, road),  # a local file: no track id
        (at(D1, 0, 3), T2.id, None, road),
        (at(D1, 0, 7), T4.id, None, None),
        (at(D1, 7, 30), T1.id, None, None),
        (at(D1, 7, 34), T1.id, None, None),
        (at(D1, 10, 15), T3.id, at(D1, 16, 30), f"spotify:album:{RIO.id}"),  # late: 2 polls miss
        (at(D1, 12, 1), T2.id, None, None),
        (at(D1, 14, 59), T6.id, None, None),
        (at(D1, 16, 0), GONE, None, None),  # no longer available: Spotify sends `track: null`
        (at(D1, 18, 20), T2.id, None, None),
        (at(D1, 18, 25), DEMO_TAKE.key, None, None),
        (at(D1, 23, 30), T4.id, None, None),
        (at(D1, 23, 55), T1.id, None, None),
        (at(D2, 0, 20), T3.id, None, None),
        (at(D2, 5, 59), T5.id, None, followed),
        (at(D2, 6, 0, 0, 250), T2.id, None, None),  # just after SNAPSHOT_1's moment
        (at(D2, 9, 45), T1.id, at(D3, 5), None),  # arrives the next day
        (at(D2, 13, 13), T6.id, None, None),
        (at(D2, 14, 0), T7.id, None, None),
        (at(D2, 20, 0), T4.id, None, None),
        (at(D2, 22, 0), T5.id, at(D3, 10), None),  # arrives after the last run: never seen
        (at(D2, 23, 59, 59, 999), T2.id, None, None),
        (at(D3, 1, 0), T3.id, None, None),
    ]
    for played_at, item, visible_at, context in plays:
        user.add_play(item, played_at, visible_at=visible_at, context_uri=context)


def _other_history(user: User) -> None:
    plays: list[tuple[datetime, str]] = [
        (at(D1, 7, 30), T3.id),  # the very moment the listener played T1: both plays count
        (at(D1, 9), T5.id),
        (at(D1, 23, 50), T2.id),
        (at(D2, 7), T6.id),
        (at(D2, 14, 0), T7.id),
        (at(D2, 23, 10), T5.id),
        (at(D3, 2), T1.id),
    ]
    for played_at, item in plays:
        user.add_play(item, played_at, context_uri=f"spotify:playlist:{FOLLOWED}")


def _other_tops(user: User) -> None:
    user.set_top("artists", "short_term", [BENE.id, NANDU.id])
    user.set_top("artists", "short_term", [NANDU.id, BENE.id, COMMA.id], at=TOP_CHANGE)
    user.set_top("tracks", "short_term", [T5.id])


def _tops(user: User) -> None:
    user.set_top("artists", "short_term", [NANDU.id, BENE.id])
    user.set_top("artists", "short_term", [SIGRUN.id, ZOE.id, NANDU.id], at=EARLY_CHANGE)
    user.set_top("artists", "short_term", [ZOE.id, SIGRUN.id, BENE.id], at=TOP_CHANGE)
    user.set_top("artists", "medium_term", [NANDU.id, SIGRUN.id])
    # long_term artists: never set, so Spotify answers an empty list.
    user.set_top("tracks", "short_term", [T4.id, T1.id])
    user.set_top("tracks", "short_term", [T1.id, T2.id, T3.id], at=EARLY_CHANGE)
    user.set_top("tracks", "short_term", [T2.id, T6.id, T1.id, T4.id], at=TOP_CHANGE)
    user.set_top("tracks", "short_term", [T6.id, T2.id], at=SAME_DAY_CHANGE)
    user.set_top("tracks", "medium_term", [T3.id, T1.id])
    user.set_top("tracks", "long_term", [T5.id, *(f.id for f in FILLERS)])  # two pages


# --- what the lake should hold ----------------------------------------------------------------


@dataclass(frozen=True)
class SeenPlay:
    """A play as the lake should hold it, with what the catalogue says about it."""

    user_id: str
    played_at: datetime
    track: Track | None  # None: a local file, or a track no longer available

    @property
    def minutes_ms(self) -> int:
        return self.track.duration_ms if self.track else 0

    @property
    def artist_ids(self) -> tuple[str, ...]:
        return self.track.artist_ids if self.track else ()


def seen_plays(world: World, runs: Iterable[Run] = RUNS) -> list[SeenPlay]:
    """Plays some history poll saw: visible at its moment and within its newest 50."""
    runs = [run for run in runs if run.polls_history]
    seen: dict[tuple[str, datetime], SeenPlay] = {}
    for user_id in USERS:
        for moment in (run.at for run in runs if run.runs_for(user_id)):
            window = world.user(user_id).history_at(moment, RECENT_WINDOW)
            # The world is kept small enough that no poll loses a play to the 50-play window.
            assert len(window) < RECENT_WINDOW, "world too big for an exact expectation"
            for play in window:
                track = world.tracks.get(play.item)
                seen[user_id, play.played_at] = SeenPlay(user_id, play.played_at, track)
    return sorted(seen.values(), key=lambda p: (p.played_at, p.user_id))


def plays_of(plays: list[SeenPlay], user: str | None) -> list[SeenPlay]:
    """A query's `[user]`: one user's plays, or everyone's when absent."""
    return [p for p in plays if user is None or p.user_id == user]


def _in_range(plays: list[SeenPlay], start: date, end: date) -> list[SeenPlay]:
    return [p for p in plays if start <= p.played_at.date() <= end]


def _minutes(total_ms: int) -> float:
    return round(total_ms / 60000.0, 2)


def expected_daily_listening(plays: list[SeenPlay], start: date, end: date) -> list[dict]:
    """One row per UTC day with plays; a play without a track counts, with 0 minutes."""
    by_day: dict[date, list[SeenPlay]] = defaultdict(list)
    for play in _in_range(plays, start, end):
        by_day[play.played_at.date()].append(play)
    return [
        {
            "date": day.isoformat(),
            "plays": len(day_plays),
            "minutes": _minutes(sum(p.minutes_ms for p in day_plays)),
            "distinct_tracks": len({p.track.id for p in day_plays if p.track}),
            "distinct_artists": len({a for p in day_plays for a in p.artist_ids}),
        }
        for day, day_plays in sorted(by_day.items())
    ]


def expected_top_artists(
    world: World, plays: list[SeenPlay], start: date, end: date, limit: int
) -> list[dict]:
    """A play counts once for each credited artist; plays desc, then name, then id."""
    counts: Counter[str] = Counter()
    total_ms: Counter[str] = Counter()
    for play in _in_range(plays, start, end):
        for artist_id in play.artist_ids:
            counts[artist_id] += 1
            total_ms[artist_id] += play.minutes_ms
    rows = [
        {
            "artist_id": artist_id,
            "artist_name": world.artists[artist_id].name,
            "plays": n,
            "minutes": _minutes(total_ms[artist_id]),
        }
        for artist_id, n in counts.items()
    ]
    rows.sort(key=lambda r: (-r["plays"], r["artist_name"], r["artist_id"]))
    return rows[:limit]


def expected_top_tracks(
    world: World, plays: list[SeenPlay], start: date, end: date, limit: int
) -> list[dict]:
    """Tracks by plays (then name, then id); plays without a track id name no track."""
    counts = Counter(p.track.id for p in _in_range(plays, start, end) if p.track)
    rows = []
    for track_id, n in counts.items():
        track = world.tracks[track_id]
        rows.append(
            {
                "track_id": track_id,
                "track_name": track.name,
                "artist_names": ", ".join(world.artists[a].name for a in track.artist_ids),
                "plays": n,
                "minutes": _minutes(n * track.duration_ms),
            }
        )
    rows.sort(key=lambda r: (-r["plays"], r["track_name"], r["track_id"]))
    return rows[:limit]


def expected_genres(
    world: World, plays: list[SeenPlay], start: date, end: date, limit: int
) -> list[dict]:
    """A play counts once per distinct genre of its artists; every play is in the share's
    denominator (local files, unavailable tracks and artists without genres included)."""
    chosen = _in_range(plays, start, end)
    counts: Counter[str] = Counter()
    for play in chosen:
        counts.update({g for a in play.artist_ids for g in world.artists[a].genres})
    rows = [
        {"genre": genre, "plays": n, "share": round(n / len(chosen), 4)}
        for genre, n in counts.items()
    ]
    rows.sort(key=lambda r: (-r["plays"], r["genre"]))
    return rows[:limit]


def expected_listening_clock(
    plays: list[SeenPlay], start: date, end: date, tz: str = "UTC"
) -> list[dict]:
    """All 24 hours of `tz`; the days themselves are chosen in UTC."""
    zone = ZoneInfo(tz)
    counts: Counter[int] = Counter()
    total_ms: Counter[int] = Counter()
    for play in _in_range(plays, start, end):
        hour = play.played_at.astimezone(zone).hour
        counts[hour] += 1
        total_ms[hour] += play.minutes_ms
    return [
        {"hour": hour, "plays": counts[hour], "minutes": _minutes(total_ms[hour])}
        for hour in range(24)
    ]


def _snapshot_moment(day: date) -> datetime:
    """The moment of the latest snapshot run on `day` (later runs win a day)."""
    return max(run.at for run in SNAPSHOTS if run.at.date() == day)


def _first_positions(
    world: World, playlist: Playlist, moment: datetime
) -> dict[str, tuple[str | None, str, int]]:
    """item key → (item_id, item_name, first 1-based position); locals keyed by name."""
    first: dict[str, tuple[str | None, str, int]] = {}
    for position, entry in enumerate(playlist.entries_at(moment), start=1):
        thing = world.resolve(entry.item)
        if thing is None:
            continue
        if isinstance(thing, LocalFile):
            key, item_id = f"local:{thing.name}", None
        else:
            key, item_id = thing.id, thing.id
        first.setdefault(key, (item_id, thing.name, position))
    return first


def expected_playlist_changes(world: World, playlist_id: str, day: date, user: str) -> list[dict]:
    """The snapshot on `day` against the latest earlier readable one; nothing when the items
    were not readable that day. Removed items last."""
    playlist = world.playlist(playlist_id)
    readable_days = sorted(
        {run.at.date() for run in SNAPSHOTS}
        if playlist.readable_by(user) and not playlist.is_editorial
        else set()
    )
    if day not in readable_days:
        return []
    current = _first_positions(world, playlist, _snapshot_moment(day))
    earlier = [d for d in readable_days if d < day]
    previous = _first_positions(world, playlist, _snapshot_moment(earlier[-1])) if earlier else {}
    rows = []
    for key in current.keys() | previous.keys():
        item_id, name, position = current.get(key) or (None, None, None)
        old_id, old_name, previous_position = previous.get(key) or (None, None, None)
        if previous_position is None:
            change = "added"
        elif position is None:
            change = "removed"
        else:
            change = "same" if position == previous_position else "moved"
        rows.append(
            {
                "item_id": item_id or old_id,
                "item_name": name or old_name,
                "change": change,
                "position": position,
                "previous_position": previous_position,
            }
        )
    big = 10**9  # None sorts last
    rows.sort(key=lambda r: (r["position"] or big, r["previous_position"] or big))
    return rows


def expected_top_items_movement(
    world: World, item_type: str, time_range: str, day: date, user_id: str
) -> list[dict]:
    """The ranking on `day` against the latest earlier snapshot; by rank."""
    user = world.user(user_id)
    kind = f"{item_type}s"
    snapshot_days = sorted({run.at.date() for run in SNAPSHOTS})
    if day not in snapshot_days:
        return []
    current = user.top_at(kind, time_range, _snapshot_moment(day))
    earlier = [d for d in snapshot_days if d < day]
    previous = user.top_at(kind, time_range, _snapshot_moment(earlier[-1])) if earlier else ()
    names = world.artists if item_type == "artist" else world.tracks
    rows = []
    for rank, item_id in enumerate(current, start=1):
        previous_rank = previous.index(item_id) + 1 if item_id in previous else None
        rows.append(
            {
                "rank": rank,
                "item_id": item_id,
                "name": names[item_id].name,
                "previous_rank": previous_rank,
                "movement": None if previous_rank is None else previous_rank - rank,
            }
        )
    return rows
