"""The OAuth connect flow end to end against the Spotify stand-in.

A "browser" follows the login URL to the stand-in's authorize page, which (the user having
consented) redirects to the callback with `code` and `state`; the callback runs for real. Both
shapes are covered: a local lake with the file secret store, and the deployed shape (S3 lake,
SSM secrets) on moto.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws

from chalicelib import auth, quota, secrets
from chalicelib.config import Config
from chalicelib.services import Services
from chalicelib.spotify.client import AppCredentials, oauth_manager, token_refresher
from chalicelib.spotify.tokens import StoredRefreshToken, UserAuth
from chalicelib.storage import get_json
from spotify_etl import connect
from spotify_standin import DEMO_USER, FRIEND_USER, StandIn, demo_world

START = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
# A deployed callback is not on loopback: the stand-in, like Spotify, allows only registered ones.
CALLBACK = "https://abc123.execute-api.us-east-1.amazonaws.com/api/auth/callback"
NOW = 1_800_000_000.0


class Clock:
    """The wall clock the flow sees, moved by the test (no sleeping)."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(demo_world(START), redirect_uris=(CALLBACK,)) as running:
        yield running


@pytest.fixture(params=["local", "deployed"])
def services(
    request: pytest.FixtureRequest, standin: StandIn, tmp_path: Path
) -> Iterator[Services]:
    spotify = {"spotify_api_url": standin.api_url, "spotify_accounts_url": standin.accounts_url}
    if request.param == "local":
        config = Config(
            lake_uri=str(tmp_path / "lake"),
            spotify_client_id=standin.client_id,
            spotify_client_secret=standin.client_secret,
            **spotify,
        )
        built = Services(config)
        built.secrets.put(secrets.SIGNING_KEY, "local-signing-key")
        yield built
        return
    with mock_aws():
        # Deployed: nothing in the environment; the app's id/secret and the key are in SSM.
        config = Config(
            stage="dev",
            lake_uri="s3://spotify-etl-lake-test",
            secrets_path="/spotify-etl/test",
            aws_region="us-east-1",
            **spotify,
        )
        built = Services(config, boto_client=lambda s: boto3.client(s, region_name="us-east-1"))
        built.client("s3").create_bucket(Bucket="spotify-etl-lake-test")
        store = built.secrets
        store.put(secrets.CLIENT_ID, standin.client_id)
        store.put(secrets.CLIENT_SECRET, standin.client_secret)
        store.put(secrets.SIGNING_KEY, "deployed-signing-key")
        yield built


def follow_login(url: str) -> dict[str, str]:
    """What the browser does: open the authorize URL; return the callback's query."""
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = urllib.parse.urlsplit(answer.headers["Location"])
    return dict(urllib.parse.parse_qsl(location.query))


def login(services: Services, clock: Clock) -> dict[str, str]:
    return follow_login(auth.login_redirect(services, redirect_uri=CALLBACK, clock=clock))


def callback(services: Services, query: dict[str, str], clock: Clock) -> str:
    return auth.complete_callback(services, query, redirect_uri=CALLBACK, clock=clock)


def token_calls(standin: StandIn) -> list[Any]:
    return [r for r in standin.requests if r.path == "/api/token"]


def stored_token(services: Services, user_id: str) -> str | None:
    return services.secrets.get(secrets.refresh_token_name(user_id))


# --- the login redirect ---------------------------------------------------------------------


def test_login_asks_for_the_scopes_the_datasets_need(services: Services, standin: StandIn) -> None:
    url = auth.login_redirect(services, redirect_uri=CALLBACK, clock=Clock())
    parts = urllib.parse.urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == standin.accounts_url + "authorize"
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert query["client_id"] == standin.client_id
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == CALLBACK
    assert set(query["scope"].split()) == set(auth.SCOPES)
    assert query["state"]
    assert standin.client_secret not in url


def test_each_login_gets_its_own_state(services: Services) -> None:
    first = auth.login_redirect(services, redirect_uri=CALLBACK, clock=Clock())
    second = auth.login_redirect(services, redirect_uri=CALLBACK, clock=Clock())
    state = lambda url: dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["state"]  # noqa: E731
    assert state(first) != state(second)


# --- the callback ---------------------------------------------------------------------------


def test_callback_connects_the_user(services: Services, standin: StandIn) -> None:
    clock = Clock()
    user_id = callback(services, login(services, clock), clock)
    assert user_id == DEMO_USER
    token = stored_token(services, DEMO_USER)
    assert token is not None
    # The stored token is the one Spotify issued: it refreshes.
    fresh = requests.post(
        standin.accounts_url + "api/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        auth=(standin.client_id, standin.client_secret),
        timeout=5,
    )
    assert fresh.status_code == 200
    assert next(r.grant_type for r in token_calls(standin)) == "authorization_code"
    assert any(r.path.rstrip("/") == "/v1/me" and r.status == 200 for r in standin.requests)


def test_the_callbacks_me_is_counted_in_the_ledger(services: Services, standin: StandIn) -> None:
    clock = Clock()
    callback(services, login(services, clock), clock)
    day = datetime.fromtimestamp(clock.now, UTC).date().isoformat()
    me_calls = [r for r in standin.requests if r.path.rstrip("/") == "/v1/me"]
    assert quota.calls_on(services.storage, day) == len(me_calls) == 1


def test_in_a_cooldown_the_callback_asks_spotify_nothing(
    services: Services, standin: StandIn
) -> None:
    clock = Clock()
    query = login(services, clock)
    moment = datetime.fromtimestamp(clock.now, UTC)
    until = moment + timedelta(hours=13)
    quota.start_cooldown(services.storage, until, reason="lockout", run_id="r", retry_after=9)
    before = len(standin.requests)
    with pytest.raises(auth.LockedOut, match="locking this app out") as refused:
        callback(services, query, clock)
    assert refused.value.status == 503
    assert len(standin.requests) == before  # not even the code exchange
    clock.now += 14 * 3600  # the state has expired by then: log in again
    assert callback(services, login(services, clock), clock) == DEMO_USER


def test_the_user_spotify_authorizes_is_the_one_connected(
    services: Services, standin: StandIn
) -> None:
    standin.authorize_as = FRIEND_USER
    clock = Clock()
    assert callback(services, login(services, clock), clock) == FRIEND_USER
    assert stored_token(services, FRIEND_USER) is not None
    assert stored_token(services, DEMO_USER) is None


def test_replayed_state_is_refused(services: Services, standin: StandIn) -> None:
    clock = Clock()
    query = login(services, clock)
    callback(services, query, clock)
    calls = len(token_calls(standin))
    with pytest.raises(auth.StateRejected, match="already used") as refused:
        callback(services, query, clock)
    assert refused.value.status == 400
    assert len(token_calls(standin)) == calls  # refused before Spotify is asked anything


def test_expired_state_is_refused(services: Services, standin: StandIn) -> None:
    clock = Clock()
    query = login(services, clock)
    clock.now += auth.STATE_LIFETIME_SECONDS
    with pytest.raises(auth.StateRejected, match="expired") as refused:
        callback(services, query, clock)
    assert refused.value.status == 400
    assert token_calls(standin) == []
    assert stored_token(services, DEMO_USER) is None


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda s: s[:-2] + ("AA" if not s.endswith("AA") else "BB"), id="signature"),
        pytest.param(
            lambda s: (
                auth._b64(json.dumps({"v": 1, "n": "mine", "exp": int(NOW) + 10**6}).encode())
                + "."
                + s.split(".")[1]
            ),
            id="payload",
        ),
        pytest.param(lambda s: auth.issue_state("a guessed key", now=NOW), id="other-key"),
        pytest.param(lambda s: "not-a-state", id="malformed"),
        pytest.param(lambda s: s.split(".")[0] + ".%%%", id="bad-base64"),
    ],
)
def test_forged_state_is_refused(services: Services, standin: StandIn, forge: Any) -> None:
    clock = Clock()
    query = login(services, clock)
    query["state"] = forge(query["state"])
    with pytest.raises(auth.StateRejected) as refused:
        callback(services, query, clock)
    assert refused.value.status == 400
    assert token_calls(standin) == []
    assert stored_token(services, DEMO_USER) is None


def test_missing_state_or_code_is_refused(services: Services) -> None:
    clock = Clock()
    query = login(services, clock)
    with pytest.raises(auth.StateRejected, match="missing"):
        callback(services, {"code": query["code"]}, clock)
    with pytest.raises(auth.ExchangeFailed, match="code is missing"):
        callback(services, {"state": query["state"]}, clock)


def test_user_who_declines_is_told_so(services: Services) -> None:
    clock = Clock()
    query = login(services, clock)
    with pytest.raises(auth.AccessDenied, match="declined") as refused:
        callback(services, {"error": "access_denied", "state": query["state"]}, clock)
    assert refused.value.status == 403


def test_an_unknown_error_is_not_echoed(services: Services) -> None:
    with pytest.raises(auth.AccessDenied) as refused:
        callback(services, {"error": "visit evil.example", "state": "s"}, Clock())
    assert str(refused.value) == "Spotify did not authorize the connection"


# --- the door: invites ----------------------------------------------------------------------


def test_the_door_wants_an_invite_only_when_deployed(services: Services) -> None:
    clock = Clock()
    deployed = services.config.is_s3_lake
    assert auth.invites_required(services.config) == deployed
    if not deployed:  # a laptop: open, whatever `invite` says
        assert auth.door_login_redirect(services, redirect_uri=CALLBACK, invite=None, clock=clock)
        return
    with pytest.raises(auth.InviteRejected) as refused:
        auth.door_login_redirect(services, redirect_uri=CALLBACK, invite=None, clock=clock)
    assert refused.value.status == 403
    invite = auth.create_invite(services.storage, now=clock.now, lifetime=60)
    url = auth.door_login_redirect(
        services, redirect_uri=CALLBACK, invite=invite.token, clock=clock
    )
    # The rest of the flow is the same as without the door.
    assert callback(services, follow_login(url), clock) == DEMO_USER
    with pytest.raises(auth.InviteRejected, match="already used"):
        auth.door_login_redirect(services, redirect_uri=CALLBACK, invite=invite.token, clock=clock)
    late = auth.create_invite(services.storage, now=clock.now, lifetime=60)
    clock.now += 60
    with pytest.raises(auth.InviteRejected, match="expired"):
        auth.door_login_redirect(services, redirect_uri=CALLBACK, invite=late.token, clock=clock)
    record = get_json(services.storage, auth.invite_key(invite.token))
    assert record == {"created_at": int(NOW), "expires_at": int(NOW) + 60, "used_at": int(NOW)}


def test_code_spotify_refuses(services: Services, standin: StandIn) -> None:
    clock = Clock()
    query = login(services, clock)
    query["code"] = "C-not-a-code-spotify-issued"
    with pytest.raises(auth.ExchangeFailed, match="invalid_grant") as refused:
        callback(services, query, clock)
    assert refused.value.status == 400
    assert "C-not-a-code" not in str(refused.value)


def test_user_the_app_does_not_allow(services: Services, standin: StandIn) -> None:
    # A Development-Mode app answers 403 for users not on its allowlist.
    standin.inject(r"^/v1/me/?$", 403)
    clock = Clock()
    with pytest.raises(auth.AccessDenied) as refused:
        callback(services, login(services, clock), clock)
    assert refused.value.status == 403
    assert stored_token(services, DEMO_USER) is None


def test_no_signing_key_means_not_configured(services: Services) -> None:
    services.secrets.delete(secrets.SIGNING_KEY)
    with pytest.raises(auth.NotConfigured) as refused:
        auth.login_redirect(services, redirect_uri=CALLBACK, clock=Clock())
    assert refused.value.status == 503


def test_rotated_refresh_token_is_persisted(services: Services, standin: StandIn) -> None:
    clock = Clock()
    user_id = callback(services, login(services, clock), clock)
    store = services.secrets
    connected = stored_token(services, user_id)
    standin.rotate_refresh_tokens = True

    credentials = AppCredentials(standin.client_id, standin.client_secret, CALLBACK)
    refresher = token_refresher(oauth_manager(services.config, credentials))
    user_auth = UserAuth(services.storage, user_id, StoredRefreshToken(store, user_id), refresher)
    assert user_auth.get_access_token()

    rotated = stored_token(services, user_id)
    assert rotated and rotated != connected
    # The old token is dead at Spotify: only the persisted one keeps the user connected.
    assert (
        requests.post(
            standin.accounts_url + "api/token",
            data={"grant_type": "refresh_token", "refresh_token": connected},
            auth=(standin.client_id, standin.client_secret),
            timeout=5,
        ).status_code
        == 400
    )


def test_used_nonce_is_remembered_in_lake_state(services: Services) -> None:
    clock = Clock()
    query = login(services, clock)
    callback(services, query, clock)
    nonces = list(services.storage.list("state/auth/nonces/"))
    assert len(nonces) == 1
    record = get_json(services.storage, nonces[0])
    assert record["used_at"] == int(NOW)


# --- `spotify-etl connect` ------------------------------------------------------------------


def test_local_connect_through_a_loopback_callback(standin: StandIn, tmp_path: Path) -> None:
    config = Config(
        lake_uri=str(tmp_path / "lake"),
        spotify_client_id=standin.client_id,
        spotify_client_secret=standin.client_secret,
        spotify_api_url=standin.api_url,
        spotify_accounts_url=standin.accounts_url,
    )
    services = Services(config)
    pages: list[str] = []

    def browser(url: str) -> bool:
        # A real browser opens the page and returns at once; this one follows the redirects.
        def visit() -> None:
            pages.append(requests.get(url, timeout=5).text)

        threading.Thread(target=visit, daemon=True).start()
        return True

    lines: list[str] = []
    user_id = connect.run_local_connect(
        services, port=0, open_browser=browser, out=lines.append, timeout=30
    )
    assert user_id == DEMO_USER
    assert stored_token(services, DEMO_USER) is not None
    assert any("authorize" in line for line in lines)
    assert standin.client_secret not in "\n".join(lines)
