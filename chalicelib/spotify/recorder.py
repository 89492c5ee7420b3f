"""Every answer Spotify gave, verbatim, for the raw envelope; and calls counted per endpoint."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import requests

# Top-level collections whose next path segment is an id: `/playlists/{id}/items`.
_ID_COLLECTIONS = frozenset(
    {"playlists", "artists", "albums", "tracks", "users", "episodes", "shows", "audiobooks"}
)


def endpoint_template(method: str, url: str, api_url: str) -> str:
    """`GET https://.../v1/playlists/abc/items?offset=50` -> `GET /playlists/{id}/items`."""
    path = urlsplit(url).path
    base = urlsplit(api_url).path.rstrip("/")
    if path.startswith(base + "/"):
        path = path[len(base) :]
    parts = path.strip("/").split("/")
    if len(parts) > 1 and parts[0] in _ID_COLLECTIONS:
        parts[1] = "{id}"
    return f"{method.upper()} /" + "/".join(parts)


class Recorder:
    """A `requests` response hook that keeps each answer and counts calls.

    Install with `session.hooks["response"].append(recorder.hook)`. `take()` hands the answers
    recorded so far to one raw envelope and starts afresh, so each dataset gets its own.
    """

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self._lock = threading.Lock()
        self._responses: list[dict[str, Any]] = []
        self._calls: Counter[str] = Counter()

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        method = (response.request.method or "GET") if response.request else "GET"
        entry = {
            "request": {"method": method, "url": response.url},
            "status": response.status_code,
            "body": _body(response),
        }
        with self._lock:
            self._responses.append(entry)
            self._calls[endpoint_template(method, response.url, self.api_url)] += 1

    def take(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The answers and call counts since the last `take()`, then forget them."""
        with self._lock:
            responses, calls = self._responses, dict(self._calls)
            self._responses, self._calls = [], Counter()
        return responses, calls


def _body(response: requests.Response) -> Any:
    # Spotify answers JSON, errors included; anything else is kept as text, never dropped.
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text
