"""Connected users: who extraction runs for, their last successful poll, connect/disconnect.

A user is connected when the secret store holds their refresh token. The `SPOTIFY_REFRESH_TOKEN`
user (local use) is connected too: their id is learnt once with `GET /me` and remembered in
state, so later runs make no such call. Tokens are never logged nor returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib import layout
from chalicelib.secrets import (
    CLIENT_ID,
    CLIENT_SECRET,
    USERS_PREFIX,
    SecretStore,
    access_token_name,
    refresh_token_name,
)
from chalicelib.spotify.tokens import (
    EnvRefreshToken,
    RefreshTokenSource,
    StoredRefreshToken,
    fingerprint,
)
from chalicelib.storage import Storage, get_json, update_json

if TYPE_CHECKING:
    from chalicelib.quota import CallGate
    from chalicelib.services import Services
    from chalicelib.spotify.client import AppCredentials, RetryPolicy

ENV_USER_KEY = layout.state_key("users", "_env_user")


@dataclass(frozen=True)
class ConnectedUser:
    user_id: str
    source: RefreshTokenSource
    kind: str  # "connected" (secret store) or "env" (SPOTIFY_REFRESH_TOKEN)


def user_state_key(user_id: str) -> str:
    return layout.state_key("users", user_id)


def app_credentials(services: Services, store: SecretStore | None = None) -> AppCredentials | None:
    """The Spotify app: from `Config` (local), else from the secret store (deployed)."""
    from chalicelib.spotify.client import AppCredentials

    config = services.config
    if config.spotify_client_id and config.spotify_client_secret:
        client_id, client_secret = config.spotify_client_id, config.spotify_client_secret
    else:
        store = store or services.secrets
        client_id, client_secret = store.get(CLIENT_ID), store.get(CLIENT_SECRET)
    if not client_id or not client_secret:
        return None
    if config.spotify_redirect_uri:
        return AppCredentials(client_id, client_secret, config.spotify_redirect_uri)
    return AppCredentials(client_id, client_secret)


def stored_user_ids(store: SecretStore) -> list[str]:
    """Users with a refresh token in the secret store."""
    suffix = "/refresh_token"
    return sorted(
        name[len(USERS_PREFIX) : -len(suffix)]
        for name in store.names(USERS_PREFIX)
        if name.endswith(suffix)
    )


def remembered_env_user(services: Services) -> str | None:
    """The `SPOTIFY_REFRESH_TOKEN` user's id, if learnt before for this very token."""
    env_token = services.config.spotify_refresh_token
    if not env_token:
        return None
    doc = get_json(services.storage, ENV_USER_KEY) or {}
    return doc.get("user_id") if doc.get("seeded_from") == fingerprint(env_token) else None


def env_user_unlearnt(services: Services) -> bool:
    """True when SPOTIFY_REFRESH_TOKEN is set but its user id is not known yet."""
    return bool(services.config.spotify_refresh_token) and remembered_env_user(services) is None


def learn_env_user(
    services: Services,
    credentials: AppCredentials,
    policy: RetryPolicy | None = None,
    gate: CallGate | None = None,
) -> str:
    """Ask `GET /me` who `SPOTIFY_REFRESH_TOKEN` belongs to; remember it and the fresh token.

    The refresh goes through the same lease as every run's, keyed by the token's fingerprint
    while the id is unknown: two first runs at once refresh (and rotate) once, not twice.
    `GET /me` is a Web API call like any other: a run passes its request budget's `gate`, which
    is asked before the call, told of a lockout, and counts the calls made (even failed ones).
    """
    from chalicelib.queries.parameters import USER_ID_PATTERN
    from chalicelib.spotify.client import SpotifyClient, oauth_manager, token_refresher
    from chalicelib.spotify.errors import SpotifyCallError
    from chalicelib.spotify.tokens import UserAuth

    env_token = services.config.spotify_refresh_token
    assert env_token, "learn_env_user needs SPOTIFY_REFRESH_TOKEN"
    store = services.secrets
    source = EnvRefreshToken(env_token, store)
    provisional = f"_env-{source.seed}"
    refresher = token_refresher(oauth_manager(services.config, credentials))
    auth = UserAuth(services.storage, provisional, source, refresher)
    client = SpotifyClient(services.config, auth, policy=policy)
    client.gate = gate
    try:
        me = client.call(lambda sp: sp.me())
    finally:
        if gate is not None:
            gate.spent(sum(client.take_record()[1].values()))
    user_id = me.get("id") if isinstance(me, dict) else None
    if not isinstance(user_id, str) or not USER_ID_PATTERN.fullmatch(user_id):
        raise SpotifyCallError("unexpected_answer", f"GET /me named no user id: {user_id!r:.80}")
    # The cached access token now serves the user under their own id too (a rotated refresh
    # token is already under `env/refresh_token`). The provisional copy stays until it expires:
    # a first run waiting on the provisional lease still finds it there, and refreshes nothing.
    cached = store.get(access_token_name(provisional))
    if cached is not None:
        store.put(access_token_name(user_id), cached)
    update_json(
        services.storage,
        ENV_USER_KEY,
        lambda _: {"user_id": user_id, "seeded_from": source.seed},
    )
    return user_id


def connected_users(
    services: Services,
    store: SecretStore,
    credentials: AppCredentials | None,
    policy: RetryPolicy | None = None,
    gate: CallGate | None = None,
) -> list[ConnectedUser]:
    """Everyone extraction runs for: stored users, then the env user (learnt once, with
    `credentials`; None: not asked for)."""
    found = {
        uid: ConnectedUser(uid, StoredRefreshToken(store, uid), "connected")
        for uid in stored_user_ids(store)
    }
    env_token = services.config.spotify_refresh_token
    if env_token:
        env_id = remembered_env_user(services)
        if env_id is None and credentials is not None:
            env_id = learn_env_user(services, credentials, policy, gate)
        if env_id is not None and env_id not in found:
            found[env_id] = ConnectedUser(env_id, EnvRefreshToken(env_token, store), "env")
    return [found[uid] for uid in sorted(found)]


def list_users(services: Services) -> list[dict[str, Any]]:
    """`GET /users`: connected users with their last successful poll (no Spotify call)."""
    return [
        {
            "user_id": user.user_id,
            "source": user.kind,
            "last_successful_poll": (
                get_json(services.storage, user_state_key(user.user_id)) or {}
            ).get("last_successful_poll"),
        }
        # No credentials: an env user not learnt yet is not asked for (listing stays offline).
        for user in connected_users(services, services.secrets, None)
    ]


def connect_user(store: SecretStore, user_id: str, refresh_token: str) -> None:
    """Store a user's refresh token (the OAuth callback and `spotify-etl connect`)."""
    store.put(refresh_token_name(user_id), refresh_token)


def disconnect_user(services: Services, user_id: str) -> bool:
    """Forget a connected user's tokens. False when no such user was connected.

    Only the secret store is touched: the API may not touch `state/tokens/` (the lease
    documents, which hold no token unless a rotated one could not be stored — that one is
    useless without the client secret and is dropped by the user's next refresh)."""
    store = services.secrets
    name = refresh_token_name(user_id)
    if name not in store.names(name):  # by name only: the API may not read any token
        return False
    store.delete(name)
    store.delete(access_token_name(user_id))
    return True


def record_poll(storage: Storage, user_id: str, at: datetime) -> None:
    """Remember the user's last successful history poll (never moves backwards)."""
    stamp = layout.iso(at)

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        doc = dict(doc or {})
        if (doc.get("last_successful_poll") or "") >= stamp:
            return None
        doc["last_successful_poll"] = stamp
        return doc

    update_json(storage, user_state_key(user_id), change)
