"""Connecting a Spotify account: the OAuth Authorization Code flow behind `GET /auth/login` and
`GET /auth/callback` (and `spotify-etl connect`).

The `state` parameter is the only thing that ties a callback to a login this app started, so it
is signed (HMAC-SHA256, key from the secret store), expires, and works once: its nonce is
recorded in the lake with a create-only write, so a replayed callback loses that race. Every
refusal is an `AuthError` carrying the HTTP status a route should answer with.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import secrets as random_secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chalicelib import layout
from chalicelib.secrets import SIGNING_KEY, SecretStore
from chalicelib.storage import Storage, create_json

if TYPE_CHECKING:
    from chalicelib.services import Services
    from chalicelib.spotify.client import AppCredentials

# What the datasets read: plays, top items, playlists (own and collaborative), saved tracks.
SCOPES = (
    "user-read-recently-played",
    "user-top-read",
    "playlist-read-private",
    "playlist-read-collaborative",
    "user-library-read",
)
STATE_LIFETIME_SECONDS = 600  # time to log in at Spotify and consent
STATE_VERSION = 1
NONCE_PREFIX = ("auth", "nonces")

Clock = Callable[[], float]


class AuthError(Exception):
    """A login or callback that cannot go on; `status` is the HTTP answer for it."""

    status = 400


class StateRejected(AuthError):
    """`state` missing, forged, expired or already used."""


class AccessDenied(AuthError):
    """The user said no at Spotify, or Spotify does not allow this user for the app."""

    status = 403


class ExchangeFailed(AuthError):
    """Spotify refused the code (expired, used, or for another redirect URI)."""


class UpstreamFailed(AuthError):
    """Spotify could not be reached or failed; trying again later may work."""

    status = 502


class NotConfigured(AuthError):
    """The deployment lacks the Spotify app's secrets or the signing key (run bootstrap)."""

    status = 503


# --- signed state ---------------------------------------------------------------------------


def issue_state(key: str, *, now: float, lifetime: float = STATE_LIFETIME_SECONDS) -> str:
    """A fresh `state`: `<payload>.<signature>`, both base64url, payload `{v, n, exp}`."""
    payload = {
        "v": STATE_VERSION,
        "n": random_secrets.token_urlsafe(16),
        "exp": int(now + lifetime),
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_b64(_sign(key, body))}"


@dataclasses.dataclass(frozen=True)
class VerifiedState:
    nonce: str
    expires_at: int


def verify_state(key: str, state: str, *, now: float) -> VerifiedState:
    """The nonce of a `state` this app signed and that has not expired; else `StateRejected`."""
    body, dot, signature = state.partition(".")
    if not dot or not body or not signature:
        raise StateRejected("state is malformed")
    try:
        given = _unb64(signature)
    except ValueError:
        raise StateRejected("state is malformed") from None
    # Checked before anything in the payload is trusted; compare_digest: no timing oracle.
    if not hmac.compare_digest(given, _sign(key, body)):
        raise StateRejected("state signature does not match: not issued by this app")
    try:
        payload = json.loads(_unb64(body))
        nonce, expires_at = str(payload["n"]), int(payload["exp"])
    except (ValueError, KeyError, TypeError):
        raise StateRejected("state is malformed") from None
    if payload.get("v") != STATE_VERSION:
        raise StateRejected("state is of an unknown version")
    if now >= expires_at:
        raise StateRejected("state expired: start again at /auth/login")
    return VerifiedState(nonce, expires_at)


def consume_nonce(storage: Storage, state: VerifiedState, *, now: float) -> None:
    """Mark the nonce used, once: a second callback with the same `state` is refused."""
    key = layout.state_key(*NONCE_PREFIX, state.nonce)
    record = {"used_at": int(now), "expires_at": state.expires_at}
    if not create_json(storage, key, record):
        raise StateRejected("state already used: start again at /auth/login")


def _sign(key: str, body: str) -> bytes:
    return hmac.new(key.encode(), body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError(str(error)) from None


# --- the flow -------------------------------------------------------------------------------


def login_redirect(
    services: Services,
    *,
    redirect_uri: str,
    store: SecretStore | None = None,
    clock: Clock = time.time,
) -> str:
    """`GET /auth/login`: Spotify's authorize URL, with the scopes and a fresh signed state."""
    store = store or services.secrets
    oauth = _oauth(services, store, redirect_uri)
    return str(oauth.get_authorize_url(state=issue_state(_signing_key(store), now=clock())))


def complete_callback(
    services: Services,
    query: Mapping[str, str],
    *,
    redirect_uri: str,
    store: SecretStore | None = None,
    clock: Clock = time.time,
) -> str:
    """`GET /auth/callback`: verify `state`, exchange the code, store the refresh token.

    Returns the connected Spotify user id. `redirect_uri` must be the one the login used.
    """
    from chalicelib import users

    if query.get("error"):
        raise AccessDenied(f"Spotify did not authorize: {query['error']}")
    code, state = query.get("code"), query.get("state")
    if not state:
        raise StateRejected("state is missing")
    if not code:
        raise ExchangeFailed("code is missing")
    store = store or services.secrets
    now = clock()
    verified = verify_state(_signing_key(store), state, now=now)
    # Spent before the exchange: a replay fails here even if this attempt fails later.
    consume_nonce(services.storage, verified, now=now)
    oauth = _oauth(services, store, redirect_uri)
    token = _exchange(oauth, code)
    user_id = _who(services, token["access_token"])
    users.connect_user(store, user_id, token["refresh_token"])
    return user_id


def ensure_signing_key(store: SecretStore) -> bool:
    """Create the signing key when absent (local use; deployed, bootstrap does). True if made."""
    if store.get(SIGNING_KEY):
        return False
    store.put(SIGNING_KEY, random_secrets.token_urlsafe(32))
    return True


def _signing_key(store: SecretStore) -> str:
    key = store.get(SIGNING_KEY)
    if not key:
        raise NotConfigured(f"no {SIGNING_KEY} in the secret store: run `spotify-etl bootstrap`")
    return key


def _credentials(services: Services, store: SecretStore, redirect_uri: str) -> AppCredentials:
    from chalicelib import users

    credentials = users.app_credentials(services, store)
    if credentials is None:
        raise NotConfigured("the Spotify app's client id and secret are not configured")
    return dataclasses.replace(credentials, redirect_uri=redirect_uri)


def _oauth(services: Services, store: SecretStore, redirect_uri: str) -> Any:
    from chalicelib.spotify.client import oauth_manager

    oauth = oauth_manager(services.config, _credentials(services, store, redirect_uri))
    oauth.scope = " ".join(SCOPES)
    return oauth


def _exchange(oauth: Any, code: str) -> dict[str, Any]:
    import requests
    from spotipy.oauth2 import SpotifyOauthError

    try:
        token = oauth.get_access_token(code, as_dict=True, check_cache=False)
    except SpotifyOauthError as error:
        # Spotify's words (invalid_grant, ...) only: the code itself is never echoed.
        raise ExchangeFailed(f"Spotify refused the authorization code: {error.error}") from None
    except requests.RequestException as error:
        raise UpstreamFailed(f"could not reach Spotify: {type(error).__name__}") from None
    if not token.get("refresh_token"):
        raise ExchangeFailed("Spotify answered without a refresh token")
    return dict(token)


def _who(services: Services, access_token: str) -> str:
    """`GET /me`: whose token this is. Spotify answers 403 for users the app does not allow."""
    from chalicelib.spotify.client import SpotifyClient
    from chalicelib.spotify.errors import SpotifyCallError

    client = SpotifyClient(services.config, None)
    client.sp.set_auth(access_token)
    try:
        return str(client.call(lambda sp: sp.me())["id"])
    except SpotifyCallError as error:
        if error.status in (401, 403):
            raise AccessDenied(f"Spotify refused /me for this user: {error}") from None
        raise UpstreamFailed(f"Spotify's /me failed: {error.reason}") from None
