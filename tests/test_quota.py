"""The request budget and the cooldown (contract §9) and `GET /health` (§5), driven through
spotipy against the stand-in: every call Spotify sees is counted in its request log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import extract_helpers as helpers
import pytest
from chalice.test import Client
from extract_helpers import api_calls, connect, make_services

from chalicelib import layout, quota, services, users
from chalicelib.config import load_config
from chalicelib.extract import runner
from chalicelib.storage import get_json, update_json
from spotify_standin import DEMO_USER, FRIEND_USER, StandIn

standin, lake_uri, local_lake = helpers.standin, helpers.lake_uri, helpers.local_lake

LATE = timedelta(hours=11, minutes=40)  # START (12:00) + this = 23:40: no history poll left
HOURS_20 = timedelta(hours=20)


def web_calls(standin: StandIn) -> int:
    """Every request the stand-in's Web API saw (errors included), not the accounts service."""
    return sum(api_calls(standin).values())


def errors_of(record: dict[str, Any], user: str, dataset: str) -> list[str]:
    return [e["reason"] for e in record["results"][user][dataset]["errors"]]


def test_daily_budget_is_read_from_the_environment() -> None:
    assert load_config({}).spotify_daily_budget == 800
    assert load_config({"SPOTIFY_DAILY_BUDGET": "120"}).spotify_daily_budget == 120


def test_polls_left_today_counts_the_rest_of_the_utc_day() -> None:
    noon = datetime.fromisoformat("2026-11-20T12:00:00+00:00")
    assert quota.polls_left_today(noon, 30) == 23  # 12:30 ... 23:30
    assert quota.polls_left_today(noon + LATE, 30) == 0
    assert quota.polls_left_today(noon, 60) == 11


def test_every_run_counts_its_calls_in_the_ledger_of_its_utc_day(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)

    first = runner.run_extraction(svc, datasets=["plays", "saved_tracks"], run_at=standin.now)
    seen_first = web_calls(standin)
    second = runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)
    next_day = standin.now + timedelta(days=1)
    standin.set_now(next_day)
    third = runner.run_extraction(svc, datasets=["plays"], run_at=next_day)

    assert first["status"] == second["status"] == third["status"] == "succeeded"
    assert first["calls"] == seen_first and second["calls"] == third["calls"] == 1
    assert sum(sum(o["calls"].values()) for o in first["results"][DEMO_USER].values()) == (
        first["calls"]
    )
    day = layout.utc(helpers.START).date().isoformat()
    ledger = get_json(svc.storage, "state/quota/ledger/" + day + ".json")
    assert ledger == {"calls": seen_first + 1}
    assert quota.calls_on(svc.storage, next_day.date().isoformat()) == 1
    assert third["quota"] == {
        "day": next_day.date().isoformat(),
        "calls_today": 1,
        "daily_budget": 800,
        "cooldown_until": None,
    }


def test_a_short_budget_goes_to_plays_then_daily_datasets_then_enrichment(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake, spotify_daily_budget=4)
    connect(svc, standin)
    connect(svc, standin, FRIEND_USER)
    at = standin.now + LATE  # no later poll today: nothing is kept back for plays

    record = runner.run_extraction(svc, run_at=at)

    # both users' plays first (2 calls), then what is left (2) for the daily datasets
    assert record["status"] == "partial"
    for user in (DEMO_USER, FRIEND_USER):
        assert record["results"][user]["plays"]["status"] == "succeeded"
    assert web_calls(standin) == 4 == record["calls"]
    assert quota.calls_on(svc.storage, at.date().isoformat()) == 4
    spent = [
        (user, name)
        for user, outcomes in record["results"].items()
        for name, outcome in outcomes.items()
        if name != "plays" and outcome["calls"]
    ]
    assert len(spent) >= 1 and all(name != "artists" for _, name in spent)
    skipped = [
        outcome
        for outcomes in record["results"].values()
        for outcome in outcomes.values()
        if not outcome["calls"]
    ]
    assert skipped and all(o["status"] == "partial" for o in skipped)
    assert all([e["reason"] for e in o["errors"]] == ["budget"] for o in skipped)
    # enrichment got nothing: it is skipped, with the reason
    [(artists_user, artists)] = [
        (u, o["artists"]) for u, o in record["results"].items() if "artists" in o
    ]
    assert artists["status"] == "partial" and artists["calls"] == {}
    assert errors_of(record, artists_user, "artists") == ["budget"]


def test_daily_datasets_leave_the_days_remaining_polls_their_calls(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake, spotify_daily_budget=30)
    connect(svc, standin)
    noon = standin.now  # 23 polls are still due today: 23 calls are kept for them

    daily = runner.run_extraction(svc, datasets=["playlists", "top_items"], run_at=noon)

    assert daily["calls"] <= 30 - 23
    assert web_calls(standin) == daily["calls"]
    assert "budget" in {r for o in daily["results"][DEMO_USER].values() for r in
                        [e["reason"] for e in o["errors"]]}  # fmt: skip
    # the polls still get theirs, until the day's budget itself is spent
    for minutes in range(0, 30 * 23, 30):
        standin.clear_log()
        at = noon + timedelta(minutes=minutes)
        poll = runner.run_extraction(svc, datasets=["plays"], run_at=at)
        assert poll["status"] == "succeeded", (minutes, poll["results"])
    assert quota.calls_on(svc.storage, noon.date().isoformat()) == daily["calls"] + 23
    update_json(svc.storage, quota.ledger_key(noon.date().isoformat()), lambda d: {"calls": 30})
    standin.clear_log()
    spent = runner.run_extraction(svc, datasets=["plays"], run_at=noon + timedelta(hours=11))
    assert spent["status"] == "partial" and web_calls(standin) == 0
    assert errors_of(spent, DEMO_USER, "plays") == ["budget"]


def test_quota_exceeded_locks_the_app_out_until_run_at_plus_retry_after(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    connect(svc, standin, FRIEND_USER)
    standin.lock_out(HOURS_20)
    run_at = standin.now

    locked = runner.run_extraction(svc, run_at=run_at)

    # one call met the lockout; nothing after it, in any dataset or for any user
    assert web_calls(standin) == 1
    until = layout.iso(run_at + HOURS_20)
    assert locked["status"] == "partial" and locked["calls"] == 1
    assert {"reason": "cooldown", "cooldown_until": until} in [
        {k: e.get(k) for k in ("reason", "cooldown_until")} for e in locked["errors"]
    ]
    first_user = min(DEMO_USER, FRIEND_USER)
    [hit] = locked["results"][first_user]["plays"]["errors"]
    assert (hit["reason"], hit["status"], hit["retry_after"]) == ("cooldown", 429, 72000)
    assert hit["cooldown_until"] == until and "QUOTA_EXCEEDED" in hit["message"]
    # the 429 itself landed, verbatim
    [key] = locked["results"][first_user]["plays"]["raw_objects"]
    assert key.startswith("raw/plays/")
    for user, outcomes in locked["results"].items():
        for name, outcome in outcomes.items():
            assert outcome["status"] == "partial", (user, name)
            assert all(e["reason"] == "cooldown" for e in outcome["errors"])
            assert all(e["cooldown_until"] == until for e in outcome["errors"])
    assert get_json(svc.storage, quota.COOLDOWN_KEY)["until"] == until

    # A later run inside the cooldown (on its own clock) makes no call at all, token included.
    standin.clear_log()
    standin.lift_quota()  # even if Spotify would answer: the app does not ask
    inside = runner.run_extraction(svc, run_at=run_at + timedelta(hours=19))
    assert standin.requests == []
    assert inside["status"] == "partial" and inside["calls"] == 0
    reasons = {e["reason"] for o in inside["results"][DEMO_USER].values() for e in o["errors"]}
    assert reasons == {"cooldown"}
    assert inside["quota"]["cooldown_until"] == until

    # A run whose run_at is past the end calls again (whatever the machine's clock says).
    standin.set_now(run_at + timedelta(hours=20, minutes=1))
    after = runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)
    assert after["status"] == "succeeded" and web_calls(standin) == 2


def test_quota_exceeded_mid_run_stops_the_same_run_at_once(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    connect(svc, standin, FRIEND_USER)
    standin.quota_after(3)

    record = runner.run_extraction(svc, run_at=standin.now)

    assert web_calls(standin) == 4  # three answered, the fourth refused, then silence
    assert record["calls"] == 4 and record["status"] == "partial"
    for user in (DEMO_USER, FRIEND_USER):  # plays went first, for everyone
        assert record["results"][user]["plays"]["status"] == "succeeded"
    cooled = [
        name
        for outcomes in record["results"].values()
        for name, outcome in outcomes.items()
        if any(e["reason"] == "cooldown" for e in outcome["errors"])
    ]
    assert "artists" in cooled and len(cooled) >= 4
    assert standin.locked_until is not None
    assert record["quota"]["cooldown_until"] == layout.iso(standin.now + timedelta(hours=20))


def test_a_retry_after_past_the_cap_starts_a_cooldown_too(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    standin.inject(r"/me/top/artists", 429, times=1, headers={"Retry-After": "3600"})
    slept: list[float] = []

    record = runner.run_extraction(
        svc,
        datasets=["plays", "top_items", "saved_tracks"],
        run_at=standin.now,
        sleep=slept.append,
    )

    assert slept == []  # never waited for it
    assert record["results"][DEMO_USER]["plays"]["status"] == "succeeded"
    [error] = record["results"][DEMO_USER]["top_items"]["errors"]
    assert error["reason"] == "cooldown" and error["retry_after"] == 3600
    assert error["cooldown_until"] == layout.iso(standin.now + timedelta(hours=1))
    assert record["results"][DEMO_USER]["saved_tracks"]["calls"] == {}
    assert errors_of(record, DEMO_USER, "saved_tracks") == ["cooldown"]
    assert web_calls(standin) == 2  # a short 429 is waited for instead (test_extract_runs)


# --- GET /health ----------------------------------------------------------------------------


@pytest.fixture
def app_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("LAKE_URI", "./lake-not-used")  # app.py reads it at import
    import app

    with Client(app.app) as client:
        yield client
    services.use(None)


def test_health_shows_polls_gaps_and_the_ledger(
    app_client: Any, standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake, spotify_daily_budget=500)
    services.use(svc)
    connect(svc, standin)
    connect(svc, standin, FRIEND_USER)
    now = layout.utc(datetime.now().astimezone())
    standin.set_now(now)

    # the demo user polled now, then again after plays fell out of the 50: a possible gap
    assert runner.run_extraction(svc, datasets=["plays"], run_at=now, users=[DEMO_USER])[
        "status"
    ] == "succeeded"
    update_json(
        svc.storage,
        layout.state_key("plays", DEMO_USER),
        lambda doc: {**doc, "newest_played_at": layout.iso(now - timedelta(days=30))},
    )
    second = runner.run_extraction(svc, datasets=["plays"], run_at=now, users=[DEMO_USER])
    [warning] = second["results"][DEMO_USER]["plays"]["warnings"]
    assert warning["type"] == "possible_gap"

    response = app_client.http.get("/health")
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["daily_budget"] == 500
    assert body["calls_today"] == 2 == quota.calls_on(svc.storage, now.date().isoformat())
    assert body["cooldown_until"] is None
    by_user = {u["user_id"]: u for u in body["users"]}
    demo, friend = by_user[DEMO_USER], by_user[FRIEND_USER]
    assert demo["last_successful_poll"] == layout.iso(now)
    assert 0 <= demo["minutes_since_poll"] < 5 and demo["stale"] is False
    assert demo["open_gaps"] == 1
    assert friend["last_successful_poll"] is None and friend["stale"] is True
    assert friend["open_gaps"] == 0

    # A poll older than 2 × 30 min + 30 min reads as stale; a cooldown shows its end.
    update_json(
        svc.storage,
        users.user_state_key(DEMO_USER),
        lambda doc: {**doc, "last_successful_poll": layout.iso(now - timedelta(minutes=91))},
    )
    quota.start_cooldown(
        svc.storage, now + timedelta(hours=3), reason="QUOTA_EXCEEDED", run_id="r", retry_after=1
    )
    body = json.loads(app_client.http.get("/health").body)
    demo = {u["user_id"]: u for u in body["users"]}[DEMO_USER]
    assert demo["stale"] is True and demo["minutes_since_poll"] >= 90
    assert body["cooldown_until"] == layout.iso(now + timedelta(hours=3))

    assert app_client.http.get("/health?x=1").status_code == 400


# --- the SPOTIFY_REFRESH_TOKEN user: learning its id is a call like any other -------------------


def env_services(standin: StandIn, lake_uri: str) -> Any:
    return make_services(standin, lake_uri, spotify_refresh_token=standin.refresh_token(DEMO_USER))


def ledger_today(svc: Any) -> int:
    return quota.calls_on(svc.storage, layout.utc(helpers.START).date().isoformat())


def test_learning_the_env_user_is_counted(standin: StandIn, local_lake: str) -> None:
    svc = env_services(standin, local_lake)
    first = runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)
    assert first["status"] == "succeeded"
    assert api_calls(standin)["GET /me"] == 1
    assert first["calls"] == web_calls(standin) == ledger_today(svc) == 2  # /me, then plays
    runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)  # the id is known now
    assert web_calls(standin) == ledger_today(svc) == 3


def test_in_a_cooldown_the_env_user_is_not_even_asked_who_it_is(
    standin: StandIn, local_lake: str
) -> None:
    svc = env_services(standin, local_lake)
    until = layout.utc(standin.now) + HOURS_20
    quota.start_cooldown(svc.storage, until, reason="QUOTA_EXCEEDED", run_id="r0", retry_after=1)
    record = runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)
    assert web_calls(standin) == 0
    assert record["status"] == "partial"
    [error] = record["errors"]
    assert (error["reason"], error["user_id"]) == ("cooldown", "SPOTIFY_REFRESH_TOKEN")
    assert error["cooldown_until"] == layout.iso(until)


def test_a_lockout_answering_the_env_users_me_starts_the_cooldown(
    standin: StandIn, local_lake: str
) -> None:
    svc = env_services(standin, local_lake)
    connect(svc, standin, FRIEND_USER)  # a stored user: still in the run, waiting likewise
    standin.lock_out(HOURS_20)
    record = runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)
    assert web_calls(standin) == ledger_today(svc) == record["calls"] == 1  # only /me
    assert record["status"] == "partial"
    assert "cooldown" in {e["reason"] for e in record["errors"]}
    assert errors_of(record, FRIEND_USER, "plays") == ["cooldown"]
    assert quota.cooldown_until(svc.storage, standin.now) is not None
    runner.run_extraction(svc, datasets=["plays"], run_at=standin.now + timedelta(hours=1))
    assert web_calls(standin) == 1


@pytest.mark.parametrize("body", [{}, {"id": None}, {"id": "../../etc"}, ["not", "an", "object"]])
def test_an_odd_me_answer_costs_only_the_env_user(
    standin: StandIn, local_lake: str, body: Any
) -> None:
    svc = env_services(standin, local_lake)
    connect(svc, standin, FRIEND_USER)
    standin.inject(r"^/v1/me/?$", 200, body=body)
    record = runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)
    assert record["status"] == "partial"
    [error] = record["errors"]
    assert (error["reason"], error["user_id"]) == ("unexpected_answer", "SPOTIFY_REFRESH_TOKEN")
    assert record["results"][FRIEND_USER]["plays"]["status"] == "succeeded"
    assert record["calls"] == web_calls(standin) == ledger_today(svc) == 2
    assert users.remembered_env_user(svc) is None  # asked again next run
