"""The stand-in's request and answer values, independent of the HTTP server that carries them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One incoming request, already parsed."""

    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    form: dict[str, str]  # an `application/x-www-form-urlencoded` body
    url: str  # absolute, as the client asked for it


@dataclass
class Answer:
    """What the stand-in answers, and who it was for (for the request log)."""

    status: int
    body: Any = None  # JSON-serialisable, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)
    user_id: str | None = None
    grant_type: str | None = None


@dataclass(frozen=True)
class Request:
    """An entry of `StandIn.requests`."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    user_id: str | None
    grant_type: str | None


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    """The Web API's error body: `{"error": {"status": N, "message": "..."}}`."""
    return Answer(status, {"error": {"status": status, "message": message}}, headers or {})


def oauth_error(status: int, error: str, description: str) -> Answer:
    """The accounts service's error body: `{"error": "...", "error_description": "..."}`."""
    return Answer(status, {"error": error, "error_description": description})
