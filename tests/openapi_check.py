"""Validate Web API answers against Spotify's OpenAPI document, relaxed for its known lags.

    from openapi_check import validate_response  # tests/ is on sys.path under pytest
    validate_response("GET", "http://127.0.0.1:PORT/v1/me/playlists?limit=5", 200, body)

The document is `tests/spotify/fixed-spotify-open-api.yml` (see that folder's README). The
relaxations mirror what Spotify really sends a Development-Mode app in 2026 (contract §1):
fields it stopped sending are not required, links it sends as null may be null, local-file items
carry null ids, and every operation may answer the common errors.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SPEC_PATH = Path(__file__).resolve().parent / "spotify" / "fixed-spotify-open-api.yml"
SERVER = "https://api.spotify.com"

# Still listed (some as required) but no longer sent to Development-Mode apps.
GONE_FIELDS = frozenset({"popularity", "followers", "available_markets", "label"})

# schema -> properties Spotify sends as null: absent links, old playlist items without
# added_at/added_by, unavailable items, plays without a context, and local files (null ids).
NULLABLE: dict[str, tuple[str, ...]] = {
    "PagingObject": ("next", "previous"),
    "CursorPagingObject": ("next", "cursors"),
    "PlaylistTrackObject": ("added_at", "added_by", "item", "track"),
    "PlayHistoryObject": ("context",),
    "TrackObject": ("id", "uri", "href", "preview_url"),
    "SimplifiedTrackObject": ("preview_url",),
    "AlbumBase": ("id", "uri", "href", "album_type", "release_date", "release_date_precision"),
    "SimplifiedArtistObject": ("id", "uri", "href"),
    "EpisodeBase": ("audio_preview_url",),
}

# The playlist item's `oneOf` names its discriminator without a mapping, and the implicit
# mapping ("#/components/schemas/track") resolves to nothing: the document's bug, fixed here.
ITEM_MAPPING = {
    "track": "#/components/schemas/TrackObject",
    "episode": "#/components/schemas/EpisodeObject",
}

# Spotify answers these on any operation; the document declares them unevenly.
COMMON_ERRORS = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "405": "BadRequest",
    "429": "TooManyRequests",
    "500": "BadRequest",
    "502": "BadRequest",
    "503": "BadRequest",
}

_NULL = {"type": "object", "nullable": True, "enum": [None]}


def relax(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of the OpenAPI document with the 2026 relaxations applied."""
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    _drop_gone_required(schemas)
    for name, props in NULLABLE.items():
        properties = schemas[name]["properties"]
        for prop in props:
            properties[prop] = _nullable(properties[prop])
    for prop in ("item", "track"):
        branch = schemas["PlaylistTrackObject"]["properties"][prop]["anyOf"][0]
        branch["discriminator"]["mapping"] = ITEM_MAPPING
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if responses is None:
                continue
            for status, name in COMMON_ERRORS.items():
                responses.setdefault(status, {"$ref": f"#/components/responses/{name}"})
    return spec


def _drop_gone_required(node: Any) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("required"), list):
            node["required"] = [f for f in node["required"] if f not in GONE_FIELDS]
            if not node["required"]:
                del node["required"]
        for value in node.values():
            _drop_gone_required(value)
    elif isinstance(node, list):
        for value in node:
            _drop_gone_required(value)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` or null. OAS 3.0's `nullable` only works beside a `type`, so wrap the rest."""
    if "type" in schema and not any(k in schema for k in ("allOf", "oneOf", "anyOf", "$ref")):
        relaxed = {**schema, "nullable": True}
        if "enum" in relaxed:
            relaxed["enum"] = [*relaxed["enum"], None]
        return relaxed
    inner = {k: v for k, v in schema.items() if k not in ("description", "deprecated")}
    return {"anyOf": [inner, _NULL]}


@functools.cache
def openapi() -> Any:
    """The relaxed document as an `openapi_core.OpenAPI`, loaded once per test session."""
    import yaml
    from openapi_core import OpenAPI

    with SPEC_PATH.open(encoding="utf-8") as file:
        spec = yaml.safe_load(file)
    return OpenAPI.from_dict(relax(spec))


def validate_response(
    method: str,
    url: str,
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Raise AssertionError unless `body` is what the document allows for this call.

    `url` may be absolute (any host: the stand-in's or Spotify's) or a path like `/v1/me`;
    only its path (from `/v1/`) and query matter.
    """
    import json

    from openapi_core.testing import MockRequest, MockResponse

    parts = urlsplit(url)
    path = parts.path if parts.path.startswith("/v1/") else "/v1/" + parts.path.lstrip("/")
    request = MockRequest(SERVER, method.lower(), path, args=dict(parse_qsl(parts.query)))
    response = MockResponse(
        json.dumps(body).encode(),
        status_code=status,
        content_type="application/json",
        headers=dict(headers or {}),
    )
    try:
        openapi().validate_response(request, response)
    except Exception as error:
        raise AssertionError(f"{method} {path} -> {status}: {_explain(error)}") from error


def _explain(error: BaseException) -> str:
    """The schema errors under openapi-core's wrapper exception, one per line."""
    lines = [str(error)]
    cause: BaseException | None = error.__cause__
    while cause is not None:
        for schema_error in getattr(cause, "schema_errors", ()):
            where = "/".join(str(p) for p in schema_error.absolute_path)
            lines.append(f"  at {where or '<root>'}: {schema_error.message[:300]}")
        lines.append(f"  {type(cause).__name__}: {str(cause)[:300]}")
        cause = cause.__cause__
    return "\n".join(lines)
