"""The REST API's logic (contract §5). `app.py` routes call these; each validates its input and
answers with a plain dict or a Chalice `Response`. Bad input raises Chalice's 4xx errors, whose
JSON body (`{"Code", "Message"}`) says what was wrong; nothing unvalidated reaches SQL or Spotify.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalice import BadRequestError, ChaliceViewError, NotFoundError, Response

from chalicelib import datasets as registry
from chalicelib import runs
from chalicelib.layout import RUN_ID_PATTERN, RUNS_PREFIX, iso, new_run_id
from chalicelib.queries.athena_engine import EXECUTION_ID_PATTERN
from chalicelib.queries.parameters import USER_ID_PATTERN
from chalicelib.services import Services
from chalicelib.storage import Storage, create_json

if TYPE_CHECKING:
    from chalicelib.queries import QueryEngine

# How long a queued run may wait for the extraction function to pick it up (its own timeout
# bounds the run after that).
RUN_START_WAIT_SECONDS = 15 * 60

# Spotify user ids are letters, digits and a little punctuation; never a path. One pattern,
# shared with the queries' `user` parameter.
_USER_ID = USER_ID_PATTERN
_RUN_BODY_KEYS = {"datasets", "users", "run_id"}


# --- runs ---------------------------------------------------------------------------------


def start_run(services: Services, raw_body: bytes | None) -> Response:
    """`POST /runs`: accept at once (202); the extraction proceeds asynchronously.

    A queued record is written first, so `GET /runs/{id}` answers at once. A retried request
    with the same `run_id` starts nothing — unless the record is still queued and no dispatch
    of it ever succeeded (the invoke raised): then it is dispatched again, since otherwise the
    run would answer 202 and never run. Dispatching twice is harmless: the extraction takes a
    queued record over with a conditional write, so only one delivery runs.
    """
    request = _run_request(_json_body(raw_body))
    _check_users_known(services, request.get("users"))
    run_at = datetime.now(UTC)
    run_id = request.get("run_id") or new_run_id(run_at)
    deadline = run_at + timedelta(seconds=RUN_START_WAIT_SECONDS)
    created = runs.queue_run(services.storage, run_id, run_at, deadline)
    record = runs.get_run(services.storage, run_id) or {}
    marker = dispatch_marker_key(run_id)
    if created or (record.get("status") == runs.QUEUED and services.storage.get(marker) is None):
        queued_at = record.get("run_at") or iso(run_at)
        try:
            _dispatch_run(services, {**request, "run_id": run_id, "run_at": queued_at})
        except Exception as error:
            raise ChaliceViewError(
                f"run {run_id} is queued but could not be started ({type(error).__name__}); "
                "retry with the same run_id"
            ) from error
        # Beside the record, not in it: the extraction takes the record over by its etag.
        create_json(services.storage, marker, {"run_id": run_id, "at": iso(datetime.now(UTC))})
        record = runs.get_run(services.storage, run_id) or record
    return Response(
        body={"run_id": run_id, "status": runs.effective_status(record)}, status_code=202
    )


def dispatch_marker_key(run_id: str) -> str:
    """`runs/dispatched/<run_id>.json`: written once the dispatch of a queued run succeeded."""
    return f"{RUNS_PREFIX}dispatched/{run_id}.json"


def get_run(storage: Storage, run_id: str) -> dict[str, Any]:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise BadRequestError(f"not a run id: {run_id!r}")
    record = runs.describe_run(storage, run_id)
    if record is None:
        raise NotFoundError(f"no run {run_id}")
    return record


def list_runs(storage: Storage, params: dict[str, str] | None) -> dict[str, Any]:
    limit = _int_param(params or {}, "limit", default=20, low=1, high=200)
    return {"runs": runs.list_runs(storage, limit=limit)}


def _json_body(raw_body: bytes | None) -> Any:
    """The request's JSON, None for an empty body (whatever its Content-Type says)."""
    if not raw_body or not raw_body.strip():
        return None
    try:
        return json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequestError(f"the body is not JSON: {error}") from error


def _run_request(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    unknown = set(body) - _RUN_BODY_KEYS
    if unknown:
        raise BadRequestError(f"unknown field(s): {', '.join(sorted(unknown))}")
    request: dict[str, Any] = {}
    if "datasets" in body:
        datasets = body["datasets"]
        if not isinstance(datasets, list) or not datasets:
            raise BadRequestError("datasets must be a non-empty list")
        if not all(isinstance(d, str) for d in datasets):
            raise BadRequestError("datasets must be a list of dataset names")
        try:
            registry.validate(datasets)
        except ValueError as error:
            raise BadRequestError(str(error)) from None
        request["datasets"] = list(dict.fromkeys(datasets))
    if "users" in body:
        users = body["users"]
        if not isinstance(users, list) or not users:
            raise BadRequestError("users must be a non-empty list of user ids")
        for user in users:
            _check_user_id(user)
        request["users"] = list(dict.fromkeys(users))
    if "run_id" in body:
        if not isinstance(body["run_id"], str) or not RUN_ID_PATTERN.fullmatch(body["run_id"]):
            raise BadRequestError("run_id must look like 20261124T063000Z-1a2b3c")
        request["run_id"] = body["run_id"]
    return request


def _check_users_known(services: Services, wanted: list[str] | None) -> None:
    """404 for a user who is not connected (no Spotify call: the env user, once learnt, counts;
    before its first run its id is unknown here, so nothing is refused then)."""
    from chalicelib import users

    if not wanted or users.env_user_unlearnt(services):
        return
    known = {user["user_id"] for user in users.list_users(services)}
    unknown = [user for user in wanted if user not in known]
    if unknown:
        raise NotFoundError(f"no connected user {', '.join(unknown)}")


def _dispatch_run(services: Services, payload: dict[str, Any]) -> None:
    """Deployed: invoke the extraction function asynchronously. Local: a background thread."""
    config = services.config
    if config.extract_function:
        services.client("lambda").invoke(
            FunctionName=config.extract_function,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )
        return
    from chalicelib.extract import runner

    thread = threading.Thread(
        target=runner.run_requested, args=(services, payload, None), daemon=True
    )
    thread.start()


# --- account connection --------------------------------------------------------------------


def auth_login(services: Services, request: Any) -> Response:
    """`GET /auth/login`: 302 to Spotify's authorize page with a signed, expiring `state`.

    On a deployed stage only with `?invite=<token>` of a valid, unused invite (403 otherwise)."""
    from chalicelib import auth

    invite = (request.query_params or {}).get("invite")
    _ensure_local_signing_key(services)
    try:
        url = auth.door_login_redirect(
            services, redirect_uri=_redirect_uri(services, request), invite=invite
        )
    except auth.AuthError as error:
        return _auth_error(error)
    return Response(body="", status_code=302, headers={"Location": url})


def create_invite(services: Services, request: Any) -> dict[str, Any]:
    """`POST /auth/invites`: a one-time login link `{"url", "expires_at"}`. Body optional:
    `{"hours": 1..168}` (default 72)."""
    from chalicelib import auth

    body = _json_body(request.raw_body)
    if body is not None and not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    unknown = set(body or {}) - {"hours"}
    if unknown:
        raise BadRequestError(f"unknown field(s): {', '.join(sorted(unknown))}")
    hours = (body or {}).get("hours", auth.INVITE_LIFETIME_SECONDS // 3600)
    top = auth.MAX_INVITE_LIFETIME_SECONDS // 3600
    # bool is an int in Python: `true` must not mean one hour.
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= top:
        raise BadRequestError(f"hours must be an integer from 1 to {top}")
    now = datetime.now(UTC)
    invite = auth.create_invite(services.storage, now=now.timestamp(), lifetime=hours * 3600)
    expires_at = datetime.fromtimestamp(invite.expires_at, UTC)
    return {
        "url": auth.invite_url(_public_base(services, request), invite.token),
        "expires_at": iso(expires_at),
    }


def auth_callback(services: Services, request: Any) -> Response:
    """`GET /auth/callback`: verify `state`, exchange the code, store the refresh token."""
    from chalicelib import auth

    query = dict(request.query_params or {})
    _ensure_local_signing_key(services)
    try:
        user_id = auth.complete_callback(
            services, query, redirect_uri=_redirect_uri(services, request)
        )
    except auth.AuthError as error:
        return _auth_error(error)
    return Response(body={"user_id": user_id, "status": "connected"}, status_code=200)


def _ensure_local_signing_key(services: Services) -> None:
    """Locally the `state` signing key is made on first use; deployed, bootstrap makes it (a
    stage missing `STAGE` is not local: it must not mint a key of its own)."""
    from chalicelib import auth

    if services.config.is_local:
        auth.ensure_signing_key(services.secrets)


_CALLBACK_PATH = "auth/callback"


def _redirect_uri(services: Services, request: Any) -> str:
    """The configured redirect URI, else this API's own `/auth/callback`."""
    if services.config.spotify_redirect_uri:
        return services.config.spotify_redirect_uri
    return _public_base(services, request) + _CALLBACK_PATH


def _public_base(services: Services, request: Any) -> str:
    """Where a browser reaches this API, ending in `/`: beside a configured redirect URI
    (a custom domain), else the request's own host (and API Gateway stage when deployed)."""
    configured = services.config.spotify_redirect_uri
    if configured and configured.rstrip("/").endswith("/" + _CALLBACK_PATH):
        return configured.rstrip("/").removesuffix(_CALLBACK_PATH)
    host = request.headers.get("host", "localhost")
    if services.config.is_local:
        return f"http://{host}/"
    stage = (request.context or {}).get("stage", "api")
    return f"https://{host}/{stage}/"


def _auth_error(error: Exception) -> Response:
    status = int(getattr(error, "status", 400))
    return Response(body={"Code": type(error).__name__, "Message": str(error)}, status_code=status)


# --- users --------------------------------------------------------------------------------


def list_users(services: Services) -> dict[str, Any]:
    from chalicelib import users

    return {"users": users.list_users(services)}


def delete_user(services: Services, user_id: str) -> dict[str, Any]:
    from chalicelib import users

    _check_user_id(user_id)
    if not users.disconnect_user(services, user_id):
        raise NotFoundError(f"no connected user {user_id}")
    return {"user_id": user_id, "status": "disconnected"}


def _check_user_id(user_id: Any) -> None:
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        raise BadRequestError(f"not a Spotify user id: {user_id!r}")


# --- queries ------------------------------------------------------------------------------


def list_queries() -> dict[str, Any]:
    from chalicelib import queries

    return {"queries": queries.list_queries()}


def run_query(engine: QueryEngine, name: str, params: dict[str, str] | None) -> Response:
    from chalicelib import queries

    try:
        answer = engine.run(name, dict(params or {}))
    except queries.UnknownQuery as error:
        raise NotFoundError(str(error)) from error
    except queries.QueryParameterError as error:
        raise BadRequestError(str(error)) from error
    except queries.QueryFailedError as error:
        raise ChaliceViewError(f"the query failed: {error}") from error
    return _query_response(answer)


def get_execution(engine: QueryEngine, execution_id: str) -> Response:
    from chalicelib import queries

    if not EXECUTION_ID_PATTERN.fullmatch(execution_id):
        raise BadRequestError(f"not an execution id: {execution_id!r}")
    try:
        answer = engine.get_execution(execution_id)
    except queries.UnknownExecution as error:
        raise NotFoundError(str(error)) from error
    except queries.QueryFailedError as error:
        raise ChaliceViewError(f"the query failed: {error}") from error
    return _query_response(answer)


def _query_response(answer: dict[str, Any]) -> Response:
    from chalicelib.queries import is_finished

    return Response(body=answer, status_code=200 if is_finished(answer) else 202)


# --- health -------------------------------------------------------------------------------


def health(services: Services, params: dict[str, str] | None = None) -> dict[str, Any]:
    """`GET /health` (contract §5): users' poll freshness and the request budget; no
    parameters, no Spotify call."""
    from chalicelib import health as health_module

    unknown = sorted(params or {})
    if unknown:
        raise BadRequestError(f"unknown parameter(s): {', '.join(unknown)}")
    return health_module.report(services)


# --- helpers ------------------------------------------------------------------------------


def _int_param(params: dict[str, str], name: str, *, default: int, low: int, high: int) -> int:
    unknown = set(params) - {name}
    if unknown:
        raise BadRequestError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    text = params.get(name)
    if text is None:
        return default
    # ASCII digits only: `"²".isdigit()` is True, yet int("²") raises (a 500, not a 400).
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise BadRequestError(f"{name} must be an integer from {low} to {high}")
    return int(text)
