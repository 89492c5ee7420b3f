"""Connecting a Spotify account: the OAuth Authorization Code flow behind `GET /auth/login` and
`GET /auth/callback` (and `spotify-etl connect`).

The `state` parameter is the only thing that ties a callback to a login this app started, so it
is signed (HMAC-SHA256, key from the secret store), expires, and works once: its nonce is
recorded in the lake with a create-only write, so a replayed callback loses that race. Every
refusal is an `AuthError` carrying the HTTP status a route should answer with.

On a deployed stage a login also needs a one-time invite (`POST /auth/invites`, `spotify-etl
invite`): a random token handed out as part of a link. The lake keeps only the token's SHA-256
(`state/invites/<hash>.json`, with its expiry), so whoever reads `state/` cannot log in with
it; a login spends the invite with a conditional write, so two logins racing on one link cannot
both win.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets as random_secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib import layout
from chalicelib.secrets import SIGNING_KEY, SecretStore
from chalicelib.storage import PreconditionFailed, Storage, create_json, dump_json

if TYPE_CHECKING:
    from chalicelib.config import Config
    from chalicelib.services import Services
    from chalicelib.spotify.client import AppCredentials

log = logging.getLogger(__name__)

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
INVITE_PREFIX = "invites"
# Long enough to reach a friend over a weekend, short enough that a forgotten link dies.
INVITE_LIFETIME_SECONDS = 72 * 3600
MAX_INVITE_LIFETIME_SECONDS = 7 * 24 * 3600
# token_urlsafe(32) gives 43 characters; anything else is refused before the lake is read.
_INVITE_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")

Clock = Callable[[], float]


class AuthError(Exception):
    """A login or callback that cannot go on; `status` is the HTTP answer for it."""

    status = 400


class StateRejected(AuthError):
    """`state` missing, forged, expired or already used."""


class AccessDenied(AuthError):
    """The user said no at Spotify, or Spotify does not allow this user for the app."""

    status = 403


class InviteRejected(AuthError):
    """A login on a deployed stage without a valid, unexpired, unused invite."""

    status = 403


class ExchangeFailed(AuthError):
    """Spotify refused the code (expired, used, or for another redirect URI)."""


class UpstreamFailed(AuthError):
    """Spotify could not be reached or failed; trying again later may work."""

    status = 502


class LockedOut(AuthError):
    """Spotify is locking the app out (contract §9): no call may reach it before the end."""

    status = 503


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


# --- invites --------------------------------------------------------------------------------


def invites_required(config: Config) -> bool:
    """Only a laptop (local lake and local stage) lets anyone log in: everything else is a
    deployed stage, whose Spotify app allows few users, so a login needs an invite."""
    return not config.is_local


@dataclasses.dataclass(frozen=True)
class Invite:
    token: str = dataclasses.field(repr=False)  # handed out once, in the link; never stored
    expires_at: int


def create_invite(
    storage: Storage, *, now: float, lifetime: float = INVITE_LIFETIME_SECONDS
) -> Invite:
    """A fresh one-time invite, recorded under its hash (`POST /auth/invites`, the CLI)."""
    if not 0 < lifetime <= MAX_INVITE_LIFETIME_SECONDS:
        raise ValueError(f"an invite lives 1 s to {MAX_INVITE_LIFETIME_SECONDS} s")
    token = random_secrets.token_urlsafe(32)
    expires_at = int(now + lifetime)
    record = {"created_at": int(now), "expires_at": expires_at, "used_at": None}
    # 256 random bits: a collision is impossible in practice, but never overwrite a record.
    if not create_json(storage, invite_key(token), record):
        raise RuntimeError("invite token collision")
    return Invite(token, expires_at)


def invite_key(token: str) -> str:
    """`state/invites/<sha256 of the token>.json`: the lake never holds the token itself."""
    return layout.state_key(INVITE_PREFIX, hashlib.sha256(token.encode()).hexdigest())


def invite_url(api_url: str, token: str) -> str:
    """The login link an invite is handed out as."""
    return f"{api_url.rstrip('/')}/auth/login?{urllib.parse.urlencode({'invite': token})}"


def check_invite(storage: Storage, token: str | None, *, now: float) -> None:
    """Nothing when `token` names an invite that may still be used; else `InviteRejected`
    saying why."""
    _usable_invite(storage, token, now=now)


def spend_invite(storage: Storage, token: str | None, *, now: float) -> None:
    """Use the invite up. The write is conditional on the version just checked, so of two
    logins racing on one link exactly one spends it; the other is refused."""
    etag, record = _usable_invite(storage, token, now=now)
    spent = {**record, "used_at": int(now)}
    try:
        storage.put(
            invite_key(str(token)), dump_json(spent), if_match=etag, content_type="application/json"
        )
    except PreconditionFailed:
        raise InviteRejected("this invite was already used: ask for a new one") from None


def _usable_invite(
    storage: Storage, token: str | None, *, now: float
) -> tuple[str, dict[str, Any]]:
    """The invite record's etag and content, if it may be used now."""
    if not token:
        raise InviteRejected(
            "logins on this stage need a one-time invite link: ask whoever runs it for one "
            "(`spotify-etl invite` or POST /auth/invites)"
        )
    if not _INVITE_TOKEN.fullmatch(token):
        raise InviteRejected("this invite is not valid")
    blob = storage.get(invite_key(token))
    if blob is None:
        raise InviteRejected("this invite is not valid")
    record = json.loads(blob.data)
    if record.get("used_at") is not None:
        raise InviteRejected("this invite was already used: ask for a new one")
    if now >= int(record["expires_at"]):
        raise InviteRejected("this invite expired: ask for a new one")
    return blob.etag, record


# --- the flow -------------------------------------------------------------------------------


def login_redirect(
    services: Services,
    *,
    redirect_uri: str,
    store: SecretStore | None = None,
    clock: Clock = time.time,
) -> str:
    """Spotify's authorize URL, with the scopes and a fresh signed state (the HTTP door is
    `door_login_redirect`; `spotify-etl connect` runs with the operator's own credentials)."""
    store = store or services.secrets
    oauth = _oauth(services, store, redirect_uri)
    return str(oauth.get_authorize_url(state=issue_state(_signing_key(store), now=clock())))


def door_login_redirect(
    services: Services,
    *,
    redirect_uri: str,
    invite: str | None,
    clock: Clock = time.time,
) -> str:
    """`GET /auth/login`: `login_redirect`, but on a deployed stage only for a valid, unexpired,
    unused `invite`, which it spends. The invite is checked before any secret is read (an
    uninvited visitor learns nothing) and spent only once the URL is built, so a stage that is
    not configured yet (503) wastes no invite."""
    if not invites_required(services.config):
        return login_redirect(services, redirect_uri=redirect_uri, clock=clock)
    check_invite(services.storage, invite, now=clock())
    url = login_redirect(services, redirect_uri=redirect_uri, clock=clock)
    spend_invite(services.storage, invite, now=clock())
    return url


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
        raise oauth_error(query["error"])
    code, state = query.get("code"), query.get("state")
    if not state:
        raise StateRejected("state is missing")
    if not code:
        raise ExchangeFailed("code is missing")
    store = store or services.secrets
    now = clock()
    verified = verify_state(_signing_key(store), state, now=now)
    moment = datetime.fromtimestamp(now, UTC)
    _not_locked_out(services.storage, moment)  # before the code is spent on an exchange
    # Spent before the exchange: a replay fails here even if this attempt fails later.
    consume_nonce(services.storage, verified, now=now)
    oauth = _oauth(services, store, redirect_uri)
    token = _exchange(oauth, code)
    user_id = _who(services, token["access_token"], moment)
    users.connect_user(store, user_id, token["refresh_token"])
    return user_id


# RFC 6749 §4.1.2.1: the codes an authorization server sends back with `error`. The value comes
# from the query string, i.e. from whoever built the link, so it is never echoed: each known
# code maps to a fixed message, anything else to a generic one.
_OAUTH_ERRORS: dict[str, tuple[type[AuthError], str]] = {
    "access_denied": (
        AccessDenied,
        "Spotify did not authorize: the connection was declined at Spotify "
        "(or Spotify does not allow this user for the app)",
    ),
    "invalid_request": (AccessDenied, "Spotify did not authorize: it found the request invalid"),
    "unauthorized_client": (
        AccessDenied,
        "Spotify did not authorize: the app may not use this flow",
    ),
    "unsupported_response_type": (
        AccessDenied,
        "Spotify did not authorize: it does not support this response type",
    ),
    "invalid_scope": (AccessDenied, "Spotify did not authorize: a requested scope is invalid"),
    "server_error": (UpstreamFailed, "Spotify had an error: try again later"),
    "temporarily_unavailable": (
        UpstreamFailed,
        "Spotify is temporarily unavailable: try again later",
    ),
}
_UNKNOWN_OAUTH_ERROR = (AccessDenied, "Spotify did not authorize the connection")


def oauth_error(code: str) -> AuthError:
    """The refusal for an `error` Spotify sent back, in fixed words."""
    kind, message = _OAUTH_ERRORS.get(code, _UNKNOWN_OAUTH_ERROR)
    return kind(message)


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


def _not_locked_out(storage: Storage, now: datetime) -> None:
    from chalicelib import quota

    until = quota.cooldown_until(storage, now)
    if until is not None:
        raise LockedOut(
            f"Spotify is locking this app out until {layout.iso(until)}: connect again then"
        )


def _who(services: Services, access_token: str, now: datetime) -> str:
    """`GET /me`: whose token this is. Spotify answers 403 for users the app does not allow.
    A Web API call like a run's: counted in the day's ledger (contract §9)."""
    from chalicelib import quota
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
    finally:
        calls = sum(client.take_record()[1].values())
        try:  # a ledger that cannot be written must not undo a connection Spotify made
            quota.add_calls(services.storage, now.date().isoformat(), calls)
        except Exception:
            log.exception("callback: %d call(s) not counted in the ledger", calls)
