"""The secret store: the Spotify app's secrets and each connected user's refresh token.

Locally a JSON file created with mode 0600 next to (never inside) the lake; deployed, SSM
Parameter Store SecureStrings under `Config.secrets_path`. Names are `/`-separated:
`users/<user_id>/refresh_token`, `users/<user_id>/access_token` (the cached access token),
`env/refresh_token` (the `SPOTIFY_REFRESH_TOKEN` user's rotated token), `spotify/client_id`,
`spotify/client_secret`, `signing_key`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from chalicelib.config import Config

CLIENT_ID = "spotify/client_id"
CLIENT_SECRET = "spotify/client_secret"
SIGNING_KEY = "signing_key"
USERS_PREFIX = "users/"
LOCAL_FILE_NAME = ".spotify-etl-secrets.json"
_APP_SECRETS = frozenset({CLIENT_ID, CLIENT_SECRET, SIGNING_KEY})
DEFAULT_SSM_PATH = "/spotify-etl"


# The `SPOTIFY_REFRESH_TOKEN` user's rotated token: `{"seeded_from", "refresh_token"}` as JSON.
ENV_REFRESH_TOKEN = "env/refresh_token"


def refresh_token_name(user_id: str) -> str:
    return f"{USERS_PREFIX}{user_id}/refresh_token"


def access_token_name(user_id: str) -> str:
    """A user's cached access token (`{"access_token", "expires_at"}` as JSON): a bearer secret,
    so it lives here and not in the lake, where every reader of `state/` would see it."""
    return f"{USERS_PREFIX}{user_id}/access_token"


class SecretStore(Protocol):
    """Small named secrets. `names(prefix)` lists names, never values."""

    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...

    def names(self, prefix: str = "") -> list[str]: ...


class LocalSecretStore:
    """Secrets in one JSON file, readable by its owner only (mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def get(self, name: str) -> str | None:
        if not self.path.exists():  # reading writes nothing, not even the lock file
            return None
        with self._locked():
            return self._read().get(name)

    def put(self, name: str, value: str) -> None:
        with self._locked():
            data = self._read()
            data[name] = value
            self._write(data)

    def delete(self, name: str) -> None:
        with self._locked():
            data = self._read()
            if data.pop(name, None) is not None:
                self._write(data)

    def names(self, prefix: str = "") -> list[str]:
        if not self.path.exists():
            return []
        with self._locked():
            return sorted(n for n in self._read() if n.startswith(prefix))

    def _read(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return {}

    def _write(self, data: dict[str, str]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        # Created 0600 from the start: the secret is never readable by others, not even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class SsmSecretStore:
    """Secrets as SSM SecureString parameters under `path`.

    SSM names allow `[a-zA-Z0-9_.-/]` only, so each name segment is encoded (`_xx` per byte
    outside `[A-Za-z0-9.-]`); Spotify user ids may hold anything.
    """

    def __init__(self, client: Any, path: str = DEFAULT_SSM_PATH) -> None:
        self.client = client
        self.path = "/" + path.strip("/")
        # The app's own secrets are read once per Lambda container (cold start), then served
        # from memory. Tokens are not cached: another container may rotate or refresh them.
        self._cache: dict[str, str | None] = {}

    def get(self, name: str) -> str | None:
        if name in self._cache:
            return self._cache[name]
        try:
            answer = self.client.get_parameter(Name=self._full(name), WithDecryption=True)
            value: str | None = str(answer["Parameter"]["Value"])
        except self.client.exceptions.ParameterNotFound:
            value = None
        if name in _APP_SECRETS:
            self._cache[name] = value
        return value

    def put(self, name: str, value: str) -> None:
        self.client.put_parameter(
            Name=self._full(name), Value=value, Type="SecureString", Overwrite=True
        )
        self._cache.pop(name, None)

    def delete(self, name: str) -> None:
        with contextlib.suppress(self.client.exceptions.ParameterNotFound):
            self.client.delete_parameter(Name=self._full(name))
        self._cache.pop(name, None)

    def names(self, prefix: str = "") -> list[str]:
        found = []
        # Listed from the prefix's own folder: reading by path is granted per path, and a role
        # allowed the root could read every secret under it (the signing key included).
        folder = prefix.rpartition("/")[0]
        path = self._full(folder) if folder else self.path
        paginator = self.client.get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=path, Recursive=True, WithDecryption=False):
            for parameter in page["Parameters"]:
                relative = parameter["Name"][len(self.path) + 1 :]
                name = "/".join(decode_segment(s) for s in relative.split("/"))
                if name.startswith(prefix):
                    found.append(name)
        return sorted(found)

    def _full(self, name: str) -> str:
        return self.path + "/" + "/".join(encode_segment(s) for s in name.split("/"))


_SAFE = re.compile(r"[A-Za-z0-9.\-]")


def encode_segment(text: str) -> str:
    """Reversible, SSM-safe: `a.b-c` stays, `_` and everything else become `_xx` per byte."""
    return "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"_{b:02x}" for b in ch.encode()) for ch in text
    )


def decode_segment(text: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "_":
            raw.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            raw += text[i].encode()
            i += 1
    return raw.decode()


def local_secrets_path(lake_uri: str) -> Path:
    """`<lake dir>/../.spotify-etl-secrets.json`: beside the lake, outside raw/curated/state."""
    return Path(lake_uri).resolve().parent / LOCAL_FILE_NAME


def build_secrets(config: Config, ssm_client: Callable[[], Any]) -> SecretStore:
    """SSM for an S3 lake (`Config.secrets_path`), else the local file next to the lake.

    For a local lake, a `Config.secrets_path` ending in `.json` names the file instead (an SSM
    path there is ignored: it belongs to the deployed stages).
    """
    if config.is_s3_lake:
        return SsmSecretStore(ssm_client(), config.secrets_path or DEFAULT_SSM_PATH)
    if config.secrets_path and config.secrets_path.endswith(".json"):
        return LocalSecretStore(config.secrets_path)
    return LocalSecretStore(local_secrets_path(config.lake_uri))
