"""spotify-etl: the Chalice app. A table of contents — every handler is one call into chalicelib."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Cron, IAMAuthorizer, Rate, Response

from chalicelib import api
from chalicelib import services as services_module
from chalicelib.config import load_config
from chalicelib.extract import runner
from chalicelib.local_events import LocalS3Events
from chalicelib.transform import handler as transform

app = Chalice(app_name="spotify-etl")

CONFIG = load_config()
# The bucket the transform listens to. A local lake has none; its writes are dispatched to the
# same handler by LocalS3Events, which reads the prefix/suffix declared below.
LAKE_BUCKET = CONFIG.lake_bucket or "local-lake"
local_events = LocalS3Events(app, LAKE_BUCKET)


def services() -> services_module.Services:
    return services_module.current(on_local_put=local_events)


# --- extraction ---------------------------------------------------------------------------


@app.schedule(Rate(CONFIG.history_poll_minutes, unit=Rate.MINUTES), name="poll_history")
def poll_history(event: Any) -> dict[str, Any]:
    """Every 30 minutes (HISTORY_POLL_MINUTES): the newest 50 plays of every connected user."""
    return runner.run_scheduled(services(), runner.HISTORY_DATASETS, event.context)


@app.schedule(Cron(0, 6, "*", "*", "?", "*"), name="daily_snapshot")
def daily_snapshot(event: Any) -> dict[str, Any]:
    """Daily at 06:00 UTC: playlists, top items, saved tracks and genre enrichment."""
    return runner.run_scheduled(services(), runner.DAILY_DATASETS, event.context)


@app.lambda_function(name="extract")
def extract(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Asynchronous target of `POST /runs`: runs the extraction the request asked for."""
    return runner.run_requested(services(), event, context)


# --- transform ----------------------------------------------------------------------------


@app.on_s3_event(
    bucket=LAKE_BUCKET,
    events=["s3:ObjectCreated:*"],
    prefix="raw/",
    suffix=".json.gz",
    name="transform",
)
def transform_raw(event: Any) -> dict[str, Any]:
    """Each raw object becomes rows in the curated tables (or a quarantine report)."""
    return transform.transform_object(services(), event.key)


@app.schedule(Rate(1, unit=Rate.HOURS), name="reconcile")
def reconcile(event: Any) -> dict[str, Any]:
    """S3 drops an event after two retries: re-drive every raw object without a marker."""
    return transform.reconcile(services())


# --- REST API -----------------------------------------------------------------------------

# Deployed stages require IAM (SigV4) on every route but the browser-facing OAuth pair.
AUTHORIZER = None if CONFIG.stage == "local" else IAMAuthorizer()


def _query_params() -> dict[str, str]:
    return dict(app.current_request.query_params or {})


@app.route("/runs", methods=["POST"], authorizer=AUTHORIZER)
def start_run() -> Response:
    return api.start_run(services(), app.current_request.raw_body)


@app.route("/runs", methods=["GET"], authorizer=AUTHORIZER)
def list_runs() -> dict[str, Any]:
    return api.list_runs(services(), _query_params())


@app.route("/runs/{run_id}", methods=["GET"], authorizer=AUTHORIZER)
def get_run(run_id: str) -> dict[str, Any]:
    return api.get_run(services(), run_id)


@app.route("/auth/login", methods=["GET"])
def auth_login() -> Response:
    return api.auth_login(services(), app.current_request)


@app.route("/auth/callback", methods=["GET"])
def auth_callback() -> Response:
    return api.auth_callback(services(), app.current_request)


@app.route("/users", methods=["GET"], authorizer=AUTHORIZER)
def list_users() -> dict[str, Any]:
    return api.list_users(services())


@app.route("/users/{user_id}", methods=["DELETE"], authorizer=AUTHORIZER)
def delete_user(user_id: str) -> dict[str, Any]:
    return api.delete_user(services(), user_id)


@app.route("/queries", methods=["GET"], authorizer=AUTHORIZER)
def list_queries() -> dict[str, Any]:
    return api.list_queries()


@app.route("/queries/{name}", methods=["GET"], authorizer=AUTHORIZER)
def run_query(name: str) -> Response:
    return api.run_query(services(), name, _query_params())


@app.route("/queries/executions/{execution_id}", methods=["GET"], authorizer=AUTHORIZER)
def get_execution(execution_id: str) -> Response:
    return api.get_execution(services(), execution_id)
