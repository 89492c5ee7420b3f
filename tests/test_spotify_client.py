"""The Spotify client, tokens, secrets and users, against the stand-in (and moto SSM)."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import extract_helpers as helpers
import pytest
from extract_helpers import api_calls, connect, envelope_of, make_services, token_calls
from moto import mock_aws

from chalicelib import users
from chalicelib.config import Config
from chalicelib.extract.runner import run_extraction
from chalicelib.secrets import (
    ENV_REFRESH_TOKEN,
    LocalSecretStore,
    SsmSecretStore,
    access_token_name,
    decode_segment,
    encode_segment,
    refresh_token_name,
)
from chalicelib.spotify.client import RetryPolicy, SpotifyClient
from chalicelib.spotify.errors import SpotifyCallError
from chalicelib.spotify.recorder import endpoint_template
from chalicelib.spotify.tokens import token_state_key
from chalicelib.storage import get_json
from spotify_standin import DEMO_USER, FRIEND_USER, StandIn

# Shared fixtures, made visible to pytest in this module.
standin, lake_uri, local_lake = helpers.standin, helpers.lake_uri, helpers.local_lake

EXPIRE_TOKENS = timedelta(days=401)  # past the fixture's access-token lifetime


@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("http://h/v1/playlists/abc/items?offset=50&limit=50", "GET /playlists/{id}/items"),
        ("http://h/v1/me/player/recently-played?limit=50", "GET /me/player/recently-played"),
        ("http://h/v1/me/top/artists?time_range=long_term", "GET /me/top/artists"),
        ("http://h/v1/me/tracks", "GET /me/tracks"),
        ("http://h/v1/artists/0OdUWJ0sBjDrqHygGUXeCF", "GET /artists/{id}"),
    ],
)
def test_calls_are_counted_per_endpoint_template(url: str, template: str) -> None:
    assert endpoint_template("get", url, "http://h/v1/") == template


# --- tokens --------------------------------------------------------------------------------


def test_rotated_refresh_token_is_persisted_and_an_expired_token_refreshed(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    store = svc.secrets
    original = store.get(refresh_token_name(DEMO_USER))
    standin.rotate_refresh_tokens = True

    first = run_extraction(svc, datasets=["plays"])
    rotated = store.get(refresh_token_name(DEMO_USER))
    assert first["status"] == "succeeded"
    assert rotated not in (None, original)
    lease = get_json(svc.storage, token_state_key(DEMO_USER))
    assert lease == {"lease": None}  # the lake holds no token, only the (released) lease
    cached = json.loads(store.get(access_token_name(DEMO_USER)))
    assert cached["access_token"]

    # Spotify expires the token before our cache thinks it should: 401, refresh once, go on.
    standin.advance(EXPIRE_TOKENS)
    second = run_extraction(svc, datasets=["plays"])
    assert second["status"] == "succeeded"
    assert token_calls(standin) == ["refresh_token", "refresh_token"]
    statuses = [r["status"] for r in envelope_of(svc, second, "plays")["responses"]]
    assert statuses == [401, 200]
    assert store.get(refresh_token_name(DEMO_USER)) not in (None, original, rotated)
    for secret in (original, rotated, cached["access_token"]):
        assert secret not in json.dumps([first, second])


def test_concurrent_runs_of_one_user_survive_rotation(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    standin.rotate_refresh_tokens = True

    def runs_at_once(count: int) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        threads = [
            threading.Thread(
                target=lambda: records.append(
                    run_extraction(svc, datasets=["plays"], sleep=time.sleep)
                )
            )
            for _ in range(count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return records

    assert [r["status"] for r in runs_at_once(4)] == ["succeeded"] * 4
    assert token_calls(standin) == ["refresh_token"]  # one refresh, under the lease

    standin.advance(EXPIRE_TOKENS)  # all four meet a 401 and need a new token at once
    standin.clear_log()
    assert [r["status"] for r in runs_at_once(4)] == ["succeeded"] * 4
    assert token_calls(standin) == ["refresh_token"]


def test_the_env_user_is_learnt_once_and_keeps_its_rotated_token_in_the_secret_store(
    standin: StandIn, local_lake: str
) -> None:
    env_token = standin.refresh_token(DEMO_USER)
    svc = make_services(standin, local_lake, spotify_refresh_token=env_token)
    standin.rotate_refresh_tokens = True

    first = run_extraction(svc, datasets=["plays"])
    assert first["status"] == "succeeded" and list(first["results"]) == [DEMO_USER]
    assert api_calls(standin) == Counter({"GET /me": 1, "GET /me/player/recently-played": 1})
    assert "refresh_token" not in (get_json(svc.storage, token_state_key(DEMO_USER)) or {})
    kept = json.loads(svc.secrets.get(ENV_REFRESH_TOKEN))  # in the secret store, not the lake
    assert kept["refresh_token"] != env_token  # the env value was rotated away

    standin.advance(EXPIRE_TOKENS)
    standin.clear_log()
    second = run_extraction(svc, datasets=["plays"])
    assert second["status"] == "succeeded"
    assert "GET /me" not in api_calls(standin)  # remembered
    assert token_calls(standin) == ["refresh_token"]  # with the rotated token, which worked
    assert [u["user_id"] for u in users.list_users(svc)] == [DEMO_USER]


def test_two_first_runs_of_the_env_user_at_once_refresh_once(
    standin: StandIn, local_lake: str
) -> None:
    """Before its id is known, the env user's token is refreshed under the same lease as any
    run's: with rotation, a second refresh would use a revoked token and fail."""
    env_token = standin.refresh_token(DEMO_USER)
    svc = make_services(standin, local_lake, spotify_refresh_token=env_token)
    standin.rotate_refresh_tokens = True
    records: list[dict[str, Any]] = []

    def first_run() -> None:
        records.append(run_extraction(svc, datasets=["plays"]))

    threads = [threading.Thread(target=first_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r["status"] for r in records] == ["succeeded", "succeeded"]
    assert token_calls(standin) == ["refresh_token"]
    assert [u["user_id"] for u in users.list_users(svc)] == [DEMO_USER]


def test_a_refused_token_fails_that_user_once_and_leaks_nothing(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    users.connect_user(svc.secrets, FRIEND_USER, "R-revoked-token-value")
    connect(svc, standin, DEMO_USER)

    record = run_extraction(svc, datasets=["plays", "saved_tracks"])

    assert record["status"] == "partial"
    friend = record["results"][FRIEND_USER]
    assert {d: o["status"] for d, o in friend.items()} == {
        "plays": "failed",
        "saved_tracks": "failed",
    }
    assert all(o["errors"][0]["reason"] == "token_refused" for o in friend.values())
    assert all(o["raw_objects"] == [] and o["calls"] == {} for o in friend.values())
    assert record["results"][DEMO_USER]["plays"]["status"] == "succeeded"
    assert token_calls(standin).count("refresh_token") == 2  # one per user, not per dataset
    assert "R-revoked-token-value" not in json.dumps(record)


def test_a_passing_token_endpoint_failure_is_retried(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    standin.inject(r"^/api/token$", 503, times=1)

    record = run_extraction(svc, datasets=["plays"])

    assert record["status"] == "succeeded"
    assert len(token_calls(standin)) == 2  # the 503, then the retry


def test_a_token_endpoint_that_stays_down_stops_the_user_with_a_reason(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    standin.inject(r"^/api/token$", 503, times=10)

    record = run_extraction(svc, datasets=["plays"])

    assert record["status"] in ("partial", "failed")
    [error] = record["results"][DEMO_USER]["plays"]["errors"]
    assert error["reason"] == "token_error"
    assert len(token_calls(standin)) == 3  # bounded


# --- bounded waiting -----------------------------------------------------------------------


def test_connection_errors_back_off_a_bounded_number_of_times() -> None:
    slept: list[float] = []
    client = SpotifyClient(
        Config(spotify_api_url="http://127.0.0.1:9/v1/"),
        None,
        policy=RetryPolicy(request_timeout=1),
        sleep=slept.append,
    )
    client.sp.set_auth("unused")

    with pytest.raises(SpotifyCallError) as raised:
        client.call(lambda sp: sp.me())

    assert raised.value.reason == "connection"
    assert slept == [0.5, 1.0, 2.0]


def test_a_retry_after_beyond_the_deadline_is_not_waited_for(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    standin.inject(r"/me/tracks", 429, headers={"Retry-After": "5"})  # under the cap...
    slept: list[float] = []

    record = run_extraction(
        svc, datasets=["saved_tracks"], sleep=slept.append, deadline=time.monotonic() + 4
    )  # ...but past the deadline

    error = record["results"][DEMO_USER]["saved_tracks"]["errors"][0]
    assert (error["reason"], error["retry_after"]) == ("rate_limited", 5)
    assert slept == [] and record["status"] == "failed"


# --- secrets and users ---------------------------------------------------------------------


def test_local_secret_store_is_private_and_beside_the_lake(
    standin: StandIn, tmp_path: Path
) -> None:
    svc = make_services(standin, str(tmp_path / "lake"))
    store = svc.secrets
    assert isinstance(store, LocalSecretStore)
    assert store.path == tmp_path / ".spotify-etl-secrets.json"

    store.put(refresh_token_name("ünïcode user"), "R-1")
    store.put("signing_key", "k")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.get(refresh_token_name("ünïcode user")) == "R-1"
    assert store.names("users/") == ["users/ünïcode user/refresh_token"]
    store.delete("signing_key")
    assert store.get("signing_key") is None and store.get("nothing") is None


@pytest.mark.parametrize("text", ["plain", "with space", "a_b", "ünï/code", "x.y-z"])
def test_ssm_names_encode_reversibly(text: str) -> None:
    encoded = encode_segment(text)
    assert all(c.isalnum() or c in "_.-" for c in encoded) and encoded.isascii()
    assert decode_segment(encoded) == text


def test_ssm_secret_store_keeps_secure_strings() -> None:
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")
        store = SsmSecretStore(client, "/spotify-etl/test")
        store.put(refresh_token_name("josé_1"), "R-2")
        store.put("spotify/client_id", "cid")

        assert store.get(refresh_token_name("josé_1")) == "R-2"
        assert store.names("users/") == ["users/josé_1/refresh_token"]
        [parameter] = client.describe_parameters(
            ParameterFilters=[{"Key": "Name", "Option": "Contains", "Values": ["users"]}]
        )["Parameters"]
        assert parameter["Type"] == "SecureString"
        store.delete(refresh_token_name("josé_1"))
        store.delete(refresh_token_name("josé_1"))  # deleting twice is fine
        assert store.get(refresh_token_name("josé_1")) is None


def test_users_are_listed_with_their_last_poll_and_can_disconnect(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin, DEMO_USER)
    connect(svc, standin, FRIEND_USER)
    record = run_extraction(svc, datasets=["plays"], run_at=standin.now)

    listed = users.list_users(svc)
    assert listed == [
        {"user_id": FRIEND_USER, "source": "connected", "last_successful_poll": record["run_at"]},
        {"user_id": DEMO_USER, "source": "connected", "last_successful_poll": record["run_at"]},
    ]
    assert users.disconnect_user(svc, FRIEND_USER)
    assert not users.disconnect_user(svc, FRIEND_USER)
    assert [u["user_id"] for u in users.list_users(svc)] == [DEMO_USER]
    assert svc.secrets.get(access_token_name(FRIEND_USER)) is None
