"""Issue 8's fault matrix: whole runs through the stand-in with faults injected, then recovery.

Three users listen all along (a play every 37-47 minutes, some arriving late) while runs poll
every three hours over two simulated days (`run_at`, as `--at` sets it; every dataset at 06:00),
and each raw object is transformed as S3's event would (or, for concurrent transforms, two at a
time). Each fault is a case of its own, with its own window in the timeline, and one case
injects them all (a short daily budget, which changes what every other fault meets, is a case
apart). Between two successful polls of a user fewer than 50 plays happen, so no play is lost
legitimately. After the faults are lifted and two more polls ran:

- every play the stand-in served is in `plays` exactly once, and that is every play the world
  holds, except a play whose `played_at` the stand-in sends unparseable (by design: it has no
  key); every save served is in `saved_tracks` once;
- quarantine reports exist for poison objects and values, with reasons;
- runs during a fault are `partial` with its reason; runs no fault touches `succeeded`;
- the quota ledger equals the Web API requests the stand-in received, and no request (token
  requests included) reached it during a cooldown.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from chalicelib import layout, quota, users
from chalicelib.config import Config
from chalicelib.extract import runner
from chalicelib.secrets import SecretStore, refresh_token_name
from chalicelib.services import Services
from chalicelib.spotify import tokens
from chalicelib.storage import LocalStorage, get_json
from chalicelib.transform import handler, markers, parquet_io
from chalicelib.transform import reconcile as redrive
from spotify_etl.local import LocalEvents
from spotify_standin import Album, Artist, Playlist, PlaylistEntry, StandIn, Track, User, World
from spotify_standin import spotify_id as sid
from spotify_standin.http import Answer, Call
from spotify_standin.render import played_at as rendered_played_at
from spotify_standin.render import timestamp as rendered_timestamp

D1 = datetime(2026, 11, 3, tzinfo=UTC)
# All faults at once: D1 and D2 every three hours, then D3 00:00 and 03:00. A case of one fault
# runs the first poll, the runs its fault needs, then two recovery polls: never more than 24
# hours (under 40 plays) between two runs.
RUN_HOURS = tuple(range(0, 54, 3))
DAILY_HOURS = frozenset({6, 30})  # every dataset; the other runs poll plays only
RECOVERY_RUNS = 2  # the last runs of every case: no fault left, everything must succeed
POLL_MINUTES = 180  # tells the budget how many polls are left in a day
USERS = ("ana", "ben.o", "cyd")
ANA, BEN, CYD = USERS
LOCKOUT = timedelta(hours=13)  # the shortest lockout seen in the wild (contract §1)
BAD_PLAYED_AT = "yesterday-ish"
BAD_ADDED_AT = "soon"
LEDGER_PREFIX = quota.ledger_key("day").rsplit("/", 1)[0] + "/"  # one document per UTC day


def at(hours: float) -> datetime:
    return D1 + timedelta(hours=hours)


# --- the world ----------------------------------------------------------------------------------

ARTISTS = tuple(
    Artist(sid(f"fm-artist-{n}"), name, genres)
    for n, (name, genres) in enumerate(
        [("Åsa", ("folk",)), ("Bo & Co", ()), ("Ciel", ("dream pop", "shoegaze"))]
    )
)
ALBUMS = (
    Album(sid("fm-album-0"), "First", (ARTISTS[0].id,), "2020-01-02"),
    Album(sid("fm-album-1"), "Second", (ARTISTS[1].id, ARTISTS[2].id), "1999"),
)
TRACKS = tuple(
    Track(
        sid(f"fm-track-{n}"),
        f"Track {n}",
        ALBUMS[n % 2].id,
        (ARTISTS[n % 3].id,) + ((ARTISTS[2].id,) if n % 2 else ()),
        150_000 + n * 1_000,
        track_number=n + 1,
    )
    for n in range(6)
)
# Poison answers: a name UTF-8 cannot encode (half a surrogate pair) and a track number past
# int32. Both are valid JSON; both come back in every poll while among the newest 50.
HALF = Track(sid("fm-half"), "Half \ud800 a pair", ALBUMS[0].id, (ARTISTS[0].id,), 200_000)
HUGE = Track(sid("fm-huge"), "Huge", ALBUMS[1].id, (ARTISTS[1].id,), 180_000, track_number=2**40)


def build_world() -> World:
    world = World(start=at(0))
    world.add(*ARTISTS, *ALBUMS, *TRACKS, HALF, HUGE)
    for index, user_id in enumerate(USERS):
        user = User(user_id, user_id.title())
        playlist = Playlist(sid(f"fm-list-{user_id}"), f"{user_id}'s mix", user_id)
        playlist.set_items(
            [PlaylistEntry(t.id, at(-48), user_id) for t in TRACKS[index : index + 3]]
        )
        world.add(user, playlist)
        user.playlist_ids = [playlist.id]
        user.set_top("artists", "short_term", [a.id for a in ARTISTS[index:]])
        user.set_top("tracks", "short_term", [t.id for t in TRACKS[: 4 - index]])
        user.save(TRACKS[index].id, at(-30))
        user.save(TRACKS[index + 1].id, at(10 + index))  # seen first by the second daily run
        _listen(user, index)
    return world


def _listen(user: User, index: int) -> None:
    """A play every 37-47 minutes from 9 hours before the first poll; every ninth shows up 100
    minutes late (Spotify lists it later, with its earlier `played_at`)."""
    moment = at(-9) + timedelta(minutes=11 * index, seconds=index, milliseconds=123 * index)
    count = 0
    while moment < at(50):
        late = timedelta(minutes=100) if count % 9 == 4 else timedelta(0)
        track = TRACKS[(count + index) % len(TRACKS)]
        user.add_play(track.id, moment, visible_at=moment + late)
        moment += timedelta(minutes=37 + (count * 7 + index * 5) % 11)
        count += 1


# --- the stand-in, counting what it served ------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as the stand-in answered it, on its own clock."""

    now: datetime
    path: str
    status: int
    user_id: str | None
    quota_exceeded: bool
    retry_after: str | None


class RecordingStandIn(StandIn):
    """The stand-in, remembering every request on its clock and every play and save it served."""

    def __init__(self, world: World) -> None:
        super().__init__(world)  # access tokens live an hour: most runs meet a 401 and refresh
        self.timeline: list[Seen] = []
        self.served_plays: list[tuple[str, Any]] = []  # (user, played_at as sent)
        self.served_saves: list[tuple[str, str, Any]] = []  # (user, track, added_at as sent)

    def answer(self, call: Call) -> Answer:
        answer = super().answer(call)
        with self.world_lock:
            body = answer.body if isinstance(answer.body, dict) else {}
            error = body.get("error")
            quota_exceeded = isinstance(error, dict) and error.get("reason") == "QUOTA_EXCEEDED"
            retry_after = answer.headers.get("Retry-After")
            self.timeline.append(
                Seen(
                    self.now, call.path, answer.status, answer.user_id, quota_exceeded, retry_after
                )
            )
            if answer.status == 200 and call.path == "/v1/me/player/recently-played":
                for item in body["items"]:
                    self.served_plays.append((str(answer.user_id), item["played_at"]))
            if answer.status == 200 and call.path == "/v1/me/tracks":
                for item in body["items"]:
                    self.served_saves.append(
                        (str(answer.user_id), item["track"]["id"], item["added_at"])
                    )
        return answer


class FlakyStore:
    """The secret store, whose puts of a name fail as often as `fail_next` says (an SSM outage
    while a rotated refresh token is saved)."""

    def __init__(self, inner: SecretStore) -> None:
        self.inner = inner
        self.failing: dict[str, int] = {}
        self.refused = 0

    def fail_next(self, name: str, times: int) -> None:
        self.failing[name] = times

    def get(self, name: str) -> str | None:
        return self.inner.get(name)

    def put(self, name: str, value: str) -> None:
        if self.failing.get(name, 0) > 0:
            self.failing[name] -= 1
            self.refused += 1
            raise ConnectionError("secret store unavailable")
        self.inner.put(name, value)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def names(self, prefix: str = "") -> list[str]:
        return self.inner.names(prefix)


class FlakyLake(LocalStorage):
    """The local lake, whose puts under a prefix fail `times` more times (an S3 outage)."""

    def __init__(self, root: Path, on_put: Any) -> None:
        super().__init__(root, on_put=on_put)
        self.failing: dict[str, int] = {}

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "application/octet-stream",
    ) -> str:
        for prefix, times in self.failing.items():
            if times > 0 and key.startswith(prefix):
                self.failing[prefix] -= 1
                raise OSError("the lake is unavailable")
        return super().put(
            key, data, if_match=if_match, if_none_match=if_none_match, content_type=content_type
        )


# --- one simulation -----------------------------------------------------------------------------


@dataclass
class RunSeen:
    hours: int
    record: dict[str, Any]
    seen: list[Seen]  # what the stand-in answered during the run

    def outcome(self, user_id: str, dataset: str) -> dict[str, Any]:
        return self.record["results"][user_id][dataset]

    def reasons(self, user_id: str, dataset: str) -> list[str]:
        return [e["reason"] for e in self.outcome(user_id, dataset)["errors"]]


@dataclass
class Sim:
    standin: RecordingStandIn
    services: Services
    storage: FlakyLake  # the services' lake
    secrets: FlakyStore  # the services' secret store
    dispatch: bool  # False: raw objects wait, then are transformed two at a time
    runs: dict[int, RunSeen] = field(default_factory=dict)
    slept: list[float] = field(default_factory=list)
    concurrent_pairs: list[tuple[str, str]] = field(default_factory=list)

    def run(self, hours: int, faults: list[Fault], *, last: bool) -> None:
        self.standin.set_now(at(hours))
        for fault in faults:
            fault.before(self, hours)
        before = len(self.standin.timeline)
        record = runner.run_extraction(
            self.services,
            datasets=None if hours in DAILY_HOURS else ["plays"],
            run_at=at(hours),
            sleep=self.slept.append,  # waits are recorded, not slept
        )
        self.runs[hours] = RunSeen(hours, record, self.standin.timeline[before:])
        # Without events, two runs' objects pile up: each user's two polls then meet.
        if not self.dispatch and (len(self.runs) % 2 == 0 or last):
            self.transform_pending()

    def transform_pending(self) -> None:
        """Two raw `plays` objects of one user and day at a time in two threads, the rest
        in a batch (what S3 would deliver as concurrent events)."""
        pending = redrive.unmarked_raw_keys(self.storage)
        by_partition: dict[tuple[str, str, str], list[str]] = {}
        for key in pending:
            parsed = layout.parse_raw_key(key)
            assert parsed is not None
            by_partition.setdefault((parsed.dataset, parsed.user_id, parsed.date), []).append(key)
        paired: set[str] = set()
        for (dataset, _, _), keys in sorted(by_partition.items()):
            if dataset != "plays":
                continue
            for first, second in zip(keys[0::2], keys[1::2], strict=False):
                self._at_once(first, second)
                paired |= {first, second}
        rest = [key for key in pending if key not in paired]
        if rest:
            handler.transform_objects(self.storage, rest)
        if self.concurrent_pairs:  # and one object delivered twice at once (at-least-once)
            again = self.concurrent_pairs[-1][0]
            self._at_once(again, again)

    def _at_once(self, first: str, second: str) -> None:
        start = threading.Barrier(2)
        outcomes: list[tuple[str, Any]] = []

        def transform(key: str) -> None:
            start.wait()  # both threads read, merge and write the same partition files
            try:
                outcomes.append((key, handler.transform_object(self.storage, key)))
            except Exception as error:  # reported by the assert below, with its type
                outcomes.append((key, error))

        threads = [threading.Thread(target=transform, args=(k,)) for k in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(outcomes) == 2
        for key, outcome in outcomes:
            assert isinstance(outcome, dict), (key, outcome)
            assert outcome["status"] in (markers.DONE, markers.QUARANTINED), outcome
        self.concurrent_pairs.append((first, second))


def make_sim(standin: RecordingStandIn, lake: Path, *, dispatch: bool, budget: int | None) -> Sim:
    config = Config(
        lake_uri=str(lake),
        spotify_client_id=standin.client_id,
        spotify_client_secret=standin.client_secret,
        spotify_api_url=standin.api_url,
        spotify_accounts_url=standin.accounts_url,
        history_poll_minutes=POLL_MINUTES,
        spotify_daily_budget=budget or quota.DEFAULT_DAILY_BUDGET,
    )
    services = Services(config)
    # each raw write is transformed, as on S3 (unless the case transforms them itself)
    storage = FlakyLake(lake, LocalEvents(services) if dispatch else None)
    secrets = FlakyStore(services.secrets)
    services.__dict__.update(storage=storage, secrets=secrets)  # what the runs use
    for user_id in USERS:
        users.connect_user(secrets, user_id, standin.refresh_token(user_id))
    return Sim(standin, services, storage, secrets, dispatch)


# --- the faults ---------------------------------------------------------------------------------


class Fault:
    """One fault: what it changes before some runs, which runs it may leave `partial`, the plays
    it costs by design, and what it checks once the timeline ran."""

    name = ""
    hours: frozenset[int] = frozenset()  # the runs it needs, besides the first and recovery
    touches: frozenset[int] = frozenset()  # runs it leaves partial
    dispatch = True
    budget: int | None = None  # SPOTIFY_DAILY_BUDGET, when the fault is a short one

    def setup(self, world: World, standin: RecordingStandIn) -> None:
        """Before the first run, with the world still private to the test."""

    def before(self, sim: Sim, hours: int) -> None:
        """Just before the run at `hours` (the stand-in's clock is already there)."""

    def lost(self, world: World) -> set[tuple[str, datetime]]:
        """(user, played_at) of world plays this fault costs by design."""
        return set()

    def partial_runs(self, sim: Sim) -> set[int]:
        """The runs it left `partial` (every other run must succeed)."""
        return set(self.touches)

    def check(self, sim: Sim) -> None:
        """Its own expectations, after the last run."""


class Short429(Fault):
    """429 with a short Retry-After: waited for and retried; four in a row stop one dataset."""

    name = "429_short"
    hours = frozenset({3, 6, 24, 42})
    touches = frozenset({42})

    def before(self, sim: Sim, hours: int) -> None:
        plays = r"^/v1/me/player/recently-played$"
        if hours == 3:
            sim.standin.inject(plays, 429, times=1, headers={"Retry-After": "1"})
        if hours == 6:
            sim.standin.inject(r"^/v1/me/top/tracks$", 429, times=1, headers={"Retry-After": "2"})
        if hours == 42:  # more than the client's attempts: the first user's poll gives up
            sim.standin.inject(plays, 429, times=4, headers={"Retry-After": "1"})

    def check(self, sim: Sim) -> None:
        assert {1, 2} <= set(sim.slept)  # honoured, not treated as a lockout
        assert sim.runs[3].outcome(ANA, "plays")["status"] == "succeeded"
        assert sim.runs[6].outcome(ANA, "top_items")["status"] == "succeeded"
        stopped = sim.runs[42]
        assert stopped.record["status"] == "partial"
        assert stopped.outcome(ANA, "plays")["status"] == "failed"
        assert stopped.reasons(ANA, "plays") == ["rate_limited"]
        # injected answers come before any token check: the first user's four tries
        polls = [s.status for s in stopped.seen if s.path.endswith("recently-played")]
        assert polls[:4] == [429] * 4 and 429 not in polls[4:]
        for user_id in (BEN, CYD):
            assert stopped.outcome(user_id, "plays")["status"] == "succeeded"
        for hours in (3, 6, 42):  # a short 429 starts no cooldown
            assert sim.runs[hours].record["quota"]["cooldown_until"] is None


class QuotaLockout(Fault):
    """429 QUOTA_EXCEEDED after one more call: a lockout of 13 hours from the 09:00 poll."""

    name = "429_quota_exceeded"
    hours = frozenset({9, 15, 21})
    touches = frozenset({9, 12, 15, 18, 21})

    def before(self, sim: Sim, hours: int) -> None:
        if hours == 9:
            sim.standin.quota_after(1, LOCKOUT)

    def check(self, sim: Sim) -> None:
        until = layout.iso(at(9) + LOCKOUT)
        first = sim.runs[9]
        assert first.record["status"] == "partial"
        assert first.record["quota"]["cooldown_until"] == until
        assert {"reason": "cooldown", "cooldown_until": until} in [
            {k: e.get(k) for k in ("reason", "cooldown_until")} for e in first.record["errors"]
        ]
        refused = [i for i, s in enumerate(first.seen) if s.quota_exceeded]
        assert len(refused) == 1 and refused[0] == len(first.seen) - 1  # the run's last request
        assert first.reasons(ANA, "plays") == ["cooldown"]
        for user_id in (BEN, CYD):
            outcome = first.outcome(user_id, "plays")
            assert outcome["calls"] == {} and first.reasons(user_id, "plays") == ["cooldown"]
        inside = [h for h in sim.runs if at(9) < at(h) < at(9) + LOCKOUT]
        assert len(inside) >= 2
        for hours in inside:  # not a single request, token requests included
            run = sim.runs[hours]
            assert run.seen == [] and run.record["calls"] == 0, hours
            assert run.record["status"] == "partial"
            for user_id in USERS:
                assert run.reasons(user_id, "plays") == ["cooldown"], (hours, user_id)
                assert run.outcome(user_id, "plays")["errors"][0]["cooldown_until"] == until
        resumed = sim.runs[24]
        assert resumed.record["quota"]["cooldown_until"] is None
        assert resumed.outcome(ANA, "plays")["status"] == "succeeded"
        assert sim.standin.locked_until is None


class ServerStorm(Fault):
    """5xx storms on one endpoint: three in a row are ridden out, six stop the first user; two
    at the accounts service are retried through."""

    name = "5xx_storm"
    hours = frozenset({15, 27, 30})
    touches = frozenset({30})
    STORM = (500, 502, 503, 500, 502, 503)

    def before(self, sim: Sim, hours: int) -> None:
        if hours == 27:  # the access token cached at 24:00 has expired: a 401 follows the storm
            sim.standin.storm(r"^/v1/me/player/recently-played$", (500, 502, 503))
        if hours == 30:  # the first refresh of the run, then the first user's top artists
            sim.standin.storm(r"^/api/token$", (502, 503))
            sim.standin.storm(r"^/v1/me/top/artists$", self.STORM)

    def check(self, sim: Sim) -> None:
        ridden = sim.runs[27]
        assert ridden.outcome(ANA, "plays")["status"] == "succeeded"
        # three server errors, then the expired token's 401 (a refresh, not a failure), then 200
        assert [s.status for s in ridden.seen if s.path.endswith("recently-played")][:5] == [
            500, 502, 503, 401, 200,
        ]  # fmt: skip
        assert {0.5, 1.0, 2.0} <= set(sim.slept)  # backoff, doubling
        daily = sim.runs[30]
        assert [s.status for s in daily.seen if s.path == "/api/token"][:3] == [502, 503, 200]
        storm = [s.status for s in daily.seen if s.path == "/v1/me/top/artists" and s.status >= 500]
        assert storm == list(self.STORM)
        assert daily.record["status"] == "partial"
        assert daily.outcome(ANA, "top_items")["status"] == "failed"
        assert daily.reasons(ANA, "top_items") == ["server_error"]
        assert daily.outcome(ANA, "plays")["status"] == "succeeded"
        # the storm's tail hit the next user who asked; their top items went through
        after = [u for u in (BEN, CYD) if daily.outcome(u, "top_items")["calls"]]
        assert after and daily.outcome(after[0], "top_items")["status"] == "succeeded"


class RefusedToken(Fault):
    """Ben revokes the app: `invalid_grant` at the accounts service, 401 on old access tokens.
    His datasets fail with `token_refused`, the others go on; connecting again restores him."""

    name = "refused_token"
    hours = frozenset({12, 24, 30, 33})
    touches = frozenset({24, 27, 30})

    def before(self, sim: Sim, hours: int) -> None:
        if hours == 24:
            sim.standin.revoke_user(BEN)
        if hours == 33:  # `spotify-etl connect` / the OAuth callback store a new token
            users.connect_user(sim.secrets, BEN, sim.standin.refresh_token(BEN))

    def check(self, sim: Sim) -> None:
        for hours in sorted(self.touches & set(sim.runs)):
            run = sim.runs[hours]
            assert run.record["status"] == "partial"
            assert run.reasons(BEN, "plays") == ["token_refused"], hours
            # one refused refresh per run, not one per dataset
            tokens_asked = [s for s in run.seen if s.path == "/api/token" and s.status == 400]
            assert len(tokens_asked) == 1, hours
            for user_id in (ANA, CYD):
                assert run.outcome(user_id, "plays")["status"] == "succeeded", hours
        for dataset in ("playlists", "top_items", "saved_tracks"):
            outcome = sim.runs[30].outcome(BEN, dataset)
            assert outcome["calls"] == {} and sim.runs[30].reasons(BEN, dataset) == [
                "token_refused"
            ]
        assert sim.runs[33].outcome(BEN, "plays")["status"] == "succeeded"


class RotationFailingSave(Fault):
    """Refresh tokens rotate on every refresh (always, here). At 12:00 on D2 every save of
    Ben's rotated token fails; at 15:00 the first one fails and a retry stores it."""

    name = "rotation_failing_save"
    hours = frozenset({18, 36, 39})
    touches = frozenset({36})

    def before(self, sim: Sim, hours: int) -> None:
        name = refresh_token_name(BEN)
        if hours == 36:
            sim.secrets.fail_next(name, tokens.SAVE_ATTEMPTS)
        if hours == 39:
            sim.secrets.fail_next(name, 1)

    def check(self, sim: Sim) -> None:
        failed = sim.runs[36]
        assert failed.record["status"] == "partial"
        assert failed.reasons(BEN, "plays") == ["token_save_failed"]
        for user_id in (ANA, CYD):
            assert failed.outcome(user_id, "plays")["status"] == "succeeded"
        assert sim.runs[39].outcome(BEN, "plays")["status"] == "succeeded"
        assert sim.secrets.refused == tokens.SAVE_ATTEMPTS + 1
        lease = get_json(sim.storage, tokens.token_state_key(BEN)) or {}
        assert "pending" not in lease  # the kept token was used, then stored


class PoisonAnswers(Fault):
    """Answers Spotify may send: half a surrogate pair in a name, a track number past int32,
    a `played_at` and an `added_at` that do not parse — each sent in every answer while its
    item is listed."""

    name = "poison_answers"
    hours = frozenset({6, 24, 30})

    def setup(self, world: World, standin: RecordingStandIn) -> None:
        world.user(ANA).add_play(HALF.id, at(4.2))
        world.user(BEN).add_play(HUGE.id, at(5.1))
        world.user(CYD).set_top("tracks", "short_term", [HUGE.id, HALF.id], at=at(1))
        world.playlist(sid(f"fm-list-{ANA}")).name = "mix \ud800"
        bad_play = self._bad_play(world)
        bad_save = rendered_timestamp(at(11))
        world.user(CYD).save(TRACKS[5].id, at(11))

        def odd_played_at(body: Any, user_id: str | None) -> None:
            for item in body.get("items") or []:
                if user_id == CYD and item.get("played_at") == rendered_played_at(bad_play):
                    item["played_at"] = BAD_PLAYED_AT

        def odd_added_at(body: Any, user_id: str | None) -> None:
            for item in body.get("items") or []:
                if user_id == CYD and item.get("added_at") == bad_save:
                    item["added_at"] = BAD_ADDED_AT

        standin.rewrite(r"^/v1/me/player/recently-played$", odd_played_at)
        standin.rewrite(r"^/v1/me/tracks$", odd_added_at)

    @staticmethod
    def _bad_play(world: World) -> datetime:
        plays = world.user(CYD).plays
        return min(plays, key=lambda p: abs(p.played_at - at(22.5))).played_at

    def lost(self, world: World) -> set[tuple[str, datetime]]:
        return {(CYD, self._bad_play(world))}  # no parseable `played_at`: no key to keep it by

    def check(self, sim: Sim) -> None:
        served_bad = [h for h, run in sim.runs.items() if self._warned(run)]
        assert served_bad, "the odd played_at was never served"
        reports = values_reports(sim)
        issues = {(i["table"], i["column"], i["action"]) for r in reports for i in r["issues"]}
        assert {
            ("plays", "played_at", "row dropped"),
            ("tracks", "name", "value nulled"),
            ("tracks", "track_number", "value nulled"),
            ("playlists", "name", "value nulled"),
            ("saved_tracks", "added_at", "row dropped"),
        } <= issues
        assert all(i["reason"] and i["value"] for r in reports for i in r["issues"])
        # the odd `added_at` costs that save only: the day's other saves are logged (check_saves)
        saves = sim.runs[30].outcome(CYD, "saved_tracks")
        assert saves["status"] == "succeeded"
        assert [w["type"] for w in saves["warnings"]] == ["unparseable_added_at"]
        # the odd values cost themselves only: their plays and tracks are in the lake
        plays = read_table(sim.storage, "plays")
        assert {(ANA, HALF.id), (BEN, HUGE.id)} <= {(p["user_id"], p["track_id"]) for p in plays}
        tracks = {t["track_id"]: t for t in read_table(sim.storage, "tracks")}
        assert tracks[HALF.id]["name"] is None and tracks[HALF.id]["track_number"] == 1
        assert tracks[HUGE.id]["track_number"] is None and tracks[HUGE.id]["name"] == "Huge"
        assert tracks[TRACKS[0].id]["name"] == "Track 0"

    @staticmethod
    def _warned(run: RunSeen) -> bool:
        outcome = run.record["results"].get(CYD, {}).get("plays") or {}
        return any(w["type"] == "unparseable_played_at" for w in outcome.get("warnings", []))


class PoisonRawObjects(Fault):
    """Objects in `raw/` that are not gzip, or gzip but not JSON, among real ones."""

    name = "poison_raw_objects"
    hours = frozenset({12, 30})

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def before(self, sim: Sim, hours: int) -> None:
        if hours != 12:
            return
        for tag, data in (("aaaaaa", b"\x00 not gzip"), ("bbbbbb", gzip.compress(b"{not json"))):
            run_id = f"{at(10).strftime('%Y%m%dT%H%M%SZ')}-{tag}"
            key = layout.raw_key("plays", at(10), ANA, run_id)
            self.keys[key] = data
            sim.storage.put(key, data)

    def check(self, sim: Sim) -> None:
        reasons = {key: quarantined_reason(sim, key) for key in self.keys}
        assert [reasons[k].split(":")[0] for k in sorted(reasons)] == ["not gzip", "not JSON"]
        # the next genre enrichment read past them
        artists = next(
            o["artists"] for o in sim.runs[30].record["results"].values() if "artists" in o
        )
        assert artists["status"] == "succeeded"
        assert artists["counts"]["unreadable_raw_objects"] == len(self.keys)
        for key, data in self.keys.items():  # left where they were, untouched
            assert sim.storage.get(key).data == data
        # A full reprocess goes past them too (quarantined again) and rebuilds the same plays.
        before = sorted(read_table(sim.storage, "plays"), key=play_key)
        summary = handler.reprocess(sim.storage)
        assert summary["quarantined"] == len(self.keys) and "deferred" not in summary
        assert sorted(read_table(sim.storage, "plays"), key=play_key) == before
        assert all(quarantined_reason(sim, key) == reasons[key] for key in self.keys)


class ConcurrentTransforms(Fault):
    """Raw objects wait; then two of one user and day are transformed at once, in two threads."""

    name = "concurrent_transforms"
    hours = frozenset({3, 6, 9, 24, 27})
    dispatch = False

    def check(self, sim: Sim) -> None:
        assert len(sim.concurrent_pairs) >= 2 * len(USERS)


class RawWriteFailure(Fault):
    """The lake refuses Cyd's raw `plays` object at 21:00 on D2: that dataset fails with
    `dataset_error` (the call made still counts), nothing moves, the next poll catches up."""

    name = "raw_write_failure"
    hours = frozenset({24, 45})
    touches = frozenset({45})

    def __init__(self) -> None:
        self.last_poll_after: str | None = None  # Cyd's last successful poll, as 45 left it

    def before(self, sim: Sim, hours: int) -> None:
        if hours == 45:
            prefix = layout.raw_key("plays", at(45), CYD, "x").rsplit("/", 1)[0] + "/"
            sim.storage.failing[prefix] = 1
        if hours == 48:
            state = get_json(sim.storage, users.user_state_key(CYD)) or {}
            self.last_poll_after = state.get("last_successful_poll")

    def check(self, sim: Sim) -> None:
        failed = sim.runs[45]
        outcome = failed.outcome(CYD, "plays")
        assert outcome["status"] == "failed" and outcome["raw_objects"] == []
        assert failed.reasons(CYD, "plays") == ["dataset_error"]
        assert "OSError" in outcome["errors"][0]["message"]
        assert set(outcome["calls"]) == {"GET /me/player/recently-played"}  # counted all the same
        polled = [h for h, run in sim.runs.items() if h < 45 and run.reasons(CYD, "plays") == []]
        assert self.last_poll_after == layout.iso(at(max(polled)))  # the failed poll is no poll
        assert sim.runs[48].outcome(CYD, "plays")["status"] == "succeeded"


class ShortBudget(Fault):
    """SPOTIFY_DAILY_BUDGET of 34 calls: plays first, then the daily datasets with what the
    day's remaining polls do not need, enrichment last; a spent day stops every call."""

    name = "budget"
    hours = frozenset({6, 12, 15, 18, 21})
    budget = 34

    def partial_runs(self, sim: Sim) -> set[int]:
        return {
            hours
            for hours, run in sim.runs.items()
            if any(
                "budget" in run.reasons(user_id, dataset)
                for user_id, outcomes in run.record["results"].items()
                for dataset in outcomes
            )
        }

    def check(self, sim: Sim) -> None:
        for key in sim.storage.list(LEDGER_PREFIX):
            assert get_json(sim.storage, key)["calls"] <= self.budget, key
        daily = sim.runs[6]
        for user_id in USERS:  # plays first, for everyone
            assert daily.outcome(user_id, "plays")["status"] == "succeeded"
        skipped = [
            (user_id, dataset)
            for user_id, outcomes in daily.record["results"].items()
            for dataset, outcome in outcomes.items()
            if daily.reasons(user_id, dataset) == ["budget"] and outcome["calls"] == {}
        ]
        assert skipped and any(dataset == "artists" for _, dataset in skipped)  # enrichment last
        polls = [h for h in sorted(sim.runs) if 6 < h < 24]
        spent = [h for h in polls if "budget" in sim.runs[h].reasons(CYD, "plays")]
        assert spent and spent[-1] == 21  # the day's budget ran out before its last poll
        for hours in spent[1:]:
            assert sim.runs[hours].seen == []  # nothing left: not a single request
        assert self.partial_runs(sim) >= {6, 21} and 24 not in self.partial_runs(sim)


SINGLE_FAULTS: tuple[type[Fault], ...] = (
    Short429,
    QuotaLockout,
    ServerStorm,
    RefusedToken,
    RotationFailingSave,
    PoisonAnswers,
    PoisonRawObjects,
    ConcurrentTransforms,
    RawWriteFailure,
)


# --- reading the lake ---------------------------------------------------------------------------


def read_table(storage: Any, table: str) -> list[dict[str, Any]]:
    rows = []
    for key in storage.list(f"curated/{table}/"):
        partition = key.split("/")[2].split("=")
        decoded, _ = parquet_io.decode(storage.get(key).data)
        rows += [{**row, partition[0]: partition[1]} for row in decoded]
    return rows


def values_reports(sim: Sim) -> list[dict[str, Any]]:
    return [
        get_json(sim.storage, key)
        for key in sim.storage.list(layout.QUARANTINE_PREFIX)
        if key.endswith(".values.json")
    ]


def quarantined_reason(sim: Sim, key: str) -> str:
    report = get_json(sim.storage, layout.quarantine_key(key))
    marker = get_json(sim.storage, layout.marker_key(key))
    assert report is not None and report["raw_key"] == key
    assert marker["status"] == markers.QUARANTINED and marker["reason"] == report["reason"]
    return str(report["reason"])


def play_key(row: dict[str, Any]) -> tuple[str, datetime]:
    return (row["user_id"], row["played_at"])


def parsed(stamp: Any) -> datetime | None:
    try:
        return layout.parse_iso(stamp) if isinstance(stamp, str) else None
    except ValueError:
        return None


# --- the checks every case makes ----------------------------------------------------------------


def check_plays(sim: Sim, world: World, faults: list[Fault]) -> None:
    """Every play served is in `plays` once; that is every play of the world but the lost."""
    table = read_table(sim.storage, "plays")
    keys = Counter((p["user_id"], p["played_at"]) for p in table)
    assert [k for k, n in keys.items() if n > 1] == []
    served = {(u, m) for u, s in sim.standin.served_plays if (m := parsed(s)) is not None}
    unparseable = {(u, s) for u, s in sim.standin.served_plays if parsed(s) is None}
    assert set(keys) == served
    lost = set().union(*(fault.lost(world) for fault in faults))
    final = at(max(sim.runs))
    truth = {
        (user_id, play.played_at)
        for user_id in USERS
        for play in world.user(user_id).plays
        if play.visible_at <= final
    }
    hours_listened = (final - at(-9)) / timedelta(hours=1)
    assert len(truth) > len(USERS) * hours_listened  # a stream of plays: over one an hour
    assert served == truth - lost, (sorted(truth - lost - served)[:5], sorted(served - truth)[:5])
    assert {u for u, _ in unparseable} == {u for u, _ in lost}  # each lost play was sent odd
    assert len(table) == len(truth - lost)


def check_poll_gaps(sim: Sim, world: World) -> None:
    """The premise: fewer than 50 plays became visible between two successful polls of a user,
    so a play missing from the lake was lost by the pipeline, not by the timeline."""
    for user_id in USERS:
        polls = [
            at(hours)
            for hours, run in sorted(sim.runs.items())
            if run.record["results"].get(user_id, {}).get("plays", {}).get("status") == "succeeded"
        ]
        for since, until in pairwise(polls):
            between = [p for p in world.user(user_id).plays if since < p.visible_at <= until]
            assert len(between) < 50, (user_id, since, until)
    # ... and the pipeline agrees: it never suspected a gap in anyone's history
    for hours, run in sim.runs.items():
        for user_id, outcomes in run.record["results"].items():
            warnings = outcomes.get("plays", {}).get("warnings", [])
            assert [w for w in warnings if w["type"] == "possible_gap"] == [], (hours, user_id)


def check_saves(sim: Sim) -> None:
    """Every save served with a parseable `added_at` is logged once."""
    table = Counter(
        (s["user_id"], s["track_id"], s["added_at"])
        for s in read_table(sim.storage, "saved_tracks")
    )
    assert [k for k, n in table.items() if n > 1] == []
    served = {(u, t, m) for u, t, s in sim.standin.served_saves if (m := parsed(s)) is not None}
    assert set(table) == served


def check_calls(sim: Sim) -> None:
    """The ledger counts exactly the Web API requests the stand-in received."""
    received = sim.standin.web_api_calls()
    ledger = sum(get_json(sim.storage, key)["calls"] for key in sim.storage.list(LEDGER_PREFIX))
    per_run = sum(run.record["calls"] for run in sim.runs.values())
    assert ledger == received == per_run
    assert received == sum(1 for s in sim.standin.timeline if s.path.startswith("/v1/"))


def check_cooldowns(sim: Sim) -> None:
    """After a QUOTA_EXCEEDED answer, nothing reaches Spotify until its Retry-After passed."""
    timeline = sim.standin.timeline
    for index, seen in enumerate(timeline):
        if not seen.quota_exceeded:
            continue
        end = seen.now + timedelta(seconds=int(seen.retry_after or 0))
        inside = [s for s in timeline[index + 1 :] if s.now < end]
        assert inside == [], inside[:3]


def check_runs(sim: Sim, faults: list[Fault]) -> None:
    touched = set().union(*(fault.partial_runs(sim) for fault in faults))
    for hours, run in sim.runs.items():
        status = run.record["status"]
        if hours in touched:
            assert status == "partial", (hours, run.record["errors"], run.record["results"])
        else:
            assert status == "succeeded", (hours, run.record["errors"], run.record["results"])
    for user_id in USERS:
        lease = get_json(sim.storage, tokens.token_state_key(user_id)) or {}
        assert lease.get("lease") is None and "pending" not in lease


def check_transforms(sim: Sim, faults: list[Fault]) -> None:
    """Every raw object has its marker; only the poison objects are quarantined."""
    assert redrive.unmarked_raw_keys(sim.storage) == []
    poison = {k for f in faults if isinstance(f, PoisonRawObjects) for k in f.keys}
    quarantined = {
        key
        for key in sim.storage.list(layout.RAW_PREFIX)
        if get_json(sim.storage, layout.marker_key(key))["status"] == markers.QUARANTINED
    }
    assert quarantined == poison
    assert handler.reconcile(sim.storage) == {"objects": 0}


# --- the cases ----------------------------------------------------------------------------------

# A short budget changes what every other fault meets: it is a case of its own.
CASES = {cls.name: (cls,) for cls in (*SINGLE_FAULTS, ShortBudget)} | {"all_at_once": SINGLE_FAULTS}


def case_hours(faults: list[Fault]) -> list[int]:
    """Every run of the timeline when all faults are on; else the first poll, the fault's runs
    and the two polls after them."""
    if len(faults) > 1:
        return list(RUN_HOURS)
    needed = sorted({0, *faults[0].hours})
    after = [h for h in RUN_HOURS if h > needed[-1] and h not in DAILY_HOURS]
    return needed + after[:RECOVERY_RUNS]


@pytest.fixture(autouse=True)
def _quick_save_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # A failing secret-store save is retried after 0.5 s, then 1 s: the same retries, no wait.
    monkeypatch.setattr(tokens, "SAVE_BACKOFF_SECONDS", 0.001)


@pytest.fixture
def simulate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Callable[..., Any]]:
    standins: list[StandIn] = []

    def run(faults: list[Fault]) -> tuple[Sim, World]:
        world = build_world()
        standin = RecordingStandIn(world).start()
        standins.append(standin)
        standin.rotate_refresh_tokens = True  # "a refresh may rotate the refresh token" (§1)
        for fault in faults:
            fault.setup(world, standin)
        dispatch = all(fault.dispatch for fault in faults)
        budgets = [fault.budget for fault in faults if fault.budget is not None]
        sim = make_sim(
            standin, tmp_path / "lake", dispatch=dispatch, budget=min(budgets, default=None)
        )
        hours = case_hours(faults)
        for index, moment in enumerate(hours):
            sim.run(moment, faults, last=index == len(hours) - 1)
        return sim, world

    caplog.set_level(logging.ERROR, logger="spotify_etl.local")
    yield run
    for standin in standins:
        standin.stop()
    # a transform that raised on a local "S3 event" would be hidden by reconcile: none may
    assert [r.getMessage() for r in caplog.records if r.name == "spotify_etl.local"] == []


@pytest.mark.parametrize("case", list(CASES))
def test_fault_matrix(case: str, simulate: Callable[..., Any]) -> None:
    faults = [cls() for cls in CASES[case]]
    sim, world = simulate(faults)

    check_poll_gaps(sim, world)
    check_plays(sim, world, faults)
    check_saves(sim)
    check_calls(sim)
    check_cooldowns(sim)
    check_runs(sim, faults)
    check_transforms(sim, faults)
    for fault in faults:
        fault.check(sim)
    for hours in sorted(sim.runs)[-RECOVERY_RUNS:]:
        assert sim.runs[hours].record["status"] == "succeeded"
