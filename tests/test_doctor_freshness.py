"""`doctor`'s freshness checks: stale users, possible gaps and a cooldown, read from a lake in
moto through the same `chalicelib.health` report `GET /health` answers.

The lake is made by real runs: the history poll goes through spotipy to the Spotify stand-in,
plays fall out of the newest 50 while nobody polls, and the stand-in locks the app out."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import extract_helpers as helpers
import pytest
from moto import mock_aws
from test_deploy_doctor import CONFIG, LAKE, REGION, STAGE, schedules

from chalicelib import health, layout, users
from chalicelib.extract import runner
from chalicelib.services import Services
from spotify_etl import bootstrap, doctor
from spotify_standin import DEMO_USER, FRIEND_USER, StandIn

standin = helpers.standin
FRESHNESS_CHECKS = ("poll freshness", "open gaps", "cooldown")


@pytest.fixture
def clients() -> Iterator[bootstrap.Clients]:
    with mock_aws():
        made = functools.cache(lambda service: boto3.client(service, region_name=REGION))
        s3 = made("s3")
        s3.create_bucket(Bucket=LAKE.bucket)
        # as bootstrap leaves it: the pipeline's guarded writes work on a versioned bucket
        s3.put_bucket_versioning(Bucket=LAKE.bucket, VersioningConfiguration={"Status": "Enabled"})
        yield made


@pytest.fixture
def pipeline(clients: bootstrap.Clients, standin: StandIn) -> Services:
    """The deployed stage's lake and secret store, with the stand-in as Spotify; two users."""
    svc = Services(
        CONFIG.replace(
            spotify_client_id=standin.client_id,
            spotify_client_secret=standin.client_secret,
            spotify_api_url=standin.api_url,
            spotify_accounts_url=standin.accounts_url,
        ),
        boto_client=clients,
    )
    for user in (DEMO_USER, FRIEND_USER):
        users.connect_user(svc.secrets, user, standin.refresh_token(user))
    return svc


def poll(svc: Services, standin: StandIn, *users_: str) -> dict[str, Any]:
    """One history poll at the stand-in's now, as the schedule runs it."""
    return runner.run_extraction(svc, datasets=["plays"], users=users_ or None, run_at=standin.now)


def freshness(clients: bootstrap.Clients, standin: StandIn) -> dict[str, doctor.Finding]:
    findings = doctor.run_checks(
        CONFIG, clients, stage=STAGE, schedules=schedules(), layers=[], now=standin.now
    )
    return {f.check: f for f in findings if f.check in FRESHNESS_CHECKS}


def test_a_fresh_lake_passes(
    clients: bootstrap.Clients, pipeline: Services, standin: StandIn
) -> None:
    assert poll(pipeline, standin)["status"] == "succeeded"
    standin.advance(timedelta(minutes=20))

    found = freshness(clients, standin)
    assert list(found) == list(FRESHNESS_CHECKS)
    assert all(f.ok for f in found.values()), [f.line() for f in found.values()]
    assert found["poll freshness"].detail == (
        f"2 user(s) polled within 90 min: {FRIEND_USER} 20 min ago, {DEMO_USER} 20 min ago"
    )
    assert found["open gaps"].detail == "no possible gap in any user's history"
    assert found["cooldown"].detail == "no cooldown; 2 of 800 calls today"


def test_a_stale_user_a_possible_gap_and_a_cooldown_are_each_reported(
    clients: bootstrap.Clients, pipeline: Services, standin: StandIn
) -> None:
    assert poll(pipeline, standin)["status"] == "succeeded"  # both users, at t0

    # 60 plays in an hour while nobody polls: the newest 50 no longer reach back.
    me = standin.world.user(DEMO_USER)
    for n in range(60):
        me.add_play(me.plays[0].item, standin.now + timedelta(seconds=60 * n + 1))
    standin.advance(timedelta(hours=1))
    gapped = poll(pipeline, standin, DEMO_USER)  # the demo user only, at t0 + 1 h
    [gap] = gapped["results"][DEMO_USER]["plays"]["warnings"]
    assert gap["type"] == "possible_gap"

    # Spotify locks the app out: the next poll makes no play call and polls nobody.
    standin.lock_out(timedelta(hours=20))
    standin.advance(timedelta(minutes=10))
    locked = poll(pipeline, standin)
    until = locked["quota"]["cooldown_until"]
    assert until is not None

    standin.advance(timedelta(minutes=30))  # t0 + 1 h 40: demo 40 min, friend 100 min
    found = freshness(clients, standin)
    stale, gaps, cooldown = (found[name] for name in FRESHNESS_CHECKS)

    assert not stale.ok
    assert stale.detail.startswith(f"1 of 2 user(s) not polled within 90 min: {FRIEND_USER} 100")
    assert DEMO_USER not in stale.detail.split(".")[0]  # polled 40 minutes ago: not stale
    assert "Spotify is locking the app out" in stale.detail

    assert gaps.ok  # a loss already suffered: reported, nothing to fix in the deployment
    assert gaps.detail == (
        "plays between these moments may be missing: "
        f"{DEMO_USER} 1 possible gap(s), latest {gap['from']} to {gap['to']}"
    )

    assert not cooldown.ok
    assert cooldown.detail.startswith(f"Spotify locked the app out until {until} (")

    # doctor said what GET /health says, from the same report
    report = health.report(pipeline, standin.now)
    by_user = {u["user_id"]: u for u in report["users"]}
    assert (by_user[DEMO_USER]["stale"], by_user[FRIEND_USER]["stale"]) == (False, True)
    assert report["cooldown_until"] == until
    assert by_user[DEMO_USER]["latest_gap"] == {"from": gap["from"], "to": gap["to"]}


def test_a_user_never_polled_is_stale_with_a_hint(
    clients: bootstrap.Clients, pipeline: Services, standin: StandIn
) -> None:
    poll(pipeline, standin, DEMO_USER)
    finding = freshness(clients, standin)["poll freshness"]
    assert not finding.ok
    assert f"{FRIEND_USER} never polled" in finding.detail
    assert "polled at the next scheduled poll" in finding.detail


def test_an_unreadable_lake_fails_each_check_without_raising(
    clients: bootstrap.Clients, pipeline: Services, standin: StandIn
) -> None:
    clients("s3").delete_bucket(Bucket=LAKE.bucket)
    found = freshness(clients, standin)
    assert not any(f.ok for f in found.values())
    assert all("NoSuchBucket" in f.detail for f in found.values())


def test_the_report_is_read_once_for_the_three_checks(
    clients: bootstrap.Clients,
    pipeline: Services,
    standin: StandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[object] = []
    real = health.report
    monkeypatch.setattr(health, "report", lambda *a: reads.append(a) or real(*a))
    freshness(clients, standin)
    assert len(reads) == 1
    assert layout.utc(reads[0][1]) == standin.now  # type: ignore[index]
