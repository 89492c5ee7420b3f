"""spotify-etl: the Chalice app. A table of contents — every handler is one call into chalicelib."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, IAMAuthorizer, Response

from chalicelib import api, dashboard, datasets
from chalicelib import services as services_module
from chalicelib.config import load_config
from chalicelib.extract import runner
from chalicelib.layout import RAW_TRIGGER
from chalicelib.schedules import schedules
from chalicelib.transform import handler as transform

app = Chalice(app_name="spotify-etl")

CONFIG = load_config()
SCHEDULES = schedules(CONFIG)
if CONFIG.is_s3_lake:  # every deployed stage
    LAKE_BUCKET = CONFIG.lake_bucket
else:
    # A laptop (`chalice local`, the test client): the local tooling dispatches each write to
    # the transform under RAW_TRIGGER, and serves the bundled sample when no Spotify app is set.
    from spotify_etl.local import LOCAL_BUCKET, serve_app_locally

    LAKE_BUCKET = LOCAL_BUCKET
    serve_app_locally()


def services() -> services_module.Services:
    return services_module.current()


# --- extraction ---------------------------------------------------------------------------


@app.schedule(SCHEDULES["poll_history"], name="poll_history")
def poll_history(event: Any) -> dict[str, Any]:
    """Every 30 minutes (HISTORY_POLL_MINUTES): the newest 50 plays of every connected user."""
    return runner.run_scheduled(services(), datasets.HISTORY, event.context)


@app.schedule(SCHEDULES["daily_snapshot"], name="daily_snapshot")
def daily_snapshot(event: Any) -> dict[str, Any]:
    """Daily at 06:00 UTC: playlists, top items, saved tracks and genre enrichment."""
    return runner.run_scheduled(services(), datasets.DAILY, event.context)


@app.lambda_function(name="extract")
def extract(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Asynchronous target of `POST /runs`: runs the extraction the request asked for."""
    return runner.run_requested(services(), event, context)


# --- transform ----------------------------------------------------------------------------


@app.on_s3_event(
    bucket=LAKE_BUCKET,
    events=list(RAW_TRIGGER.events),
    prefix=RAW_TRIGGER.prefix,
    suffix=RAW_TRIGGER.suffix,
    name="transform",
)
def transform_raw(event: Any) -> dict[str, Any]:
    """Each raw object becomes rows in the curated tables (or a quarantine report)."""
    return transform.transform_object(services().storage, event.key)


@app.schedule(SCHEDULES["reconcile"], name="reconcile")
def reconcile(event: Any) -> dict[str, Any]:
    """Every 6 hours: S3 drops an event after two retries; re-drive raw objects with no marker."""
    return transform.reconcile(services().storage)


# --- REST API -----------------------------------------------------------------------------

# Deployed stages require IAM (SigV4) on every route but the browser-facing OAuth pair. Off
# only on a laptop (local lake and local stage): an s3:// lake, or a stage that lost its STAGE
# variable, fails closed.
AUTHORIZER = None if CONFIG.is_local else IAMAuthorizer()


def _query_params() -> dict[str, str]:
    return dict(app.current_request.query_params or {})


@app.route("/runs", methods=["POST"], authorizer=AUTHORIZER)
def start_run() -> Response:
    return api.start_run(services(), app.current_request.raw_body)


@app.route("/runs", methods=["GET"], authorizer=AUTHORIZER)
def list_runs() -> dict[str, Any]:
    return api.list_runs(services().storage, _query_params())


@app.route("/runs/{run_id}", methods=["GET"], authorizer=AUTHORIZER)
def get_run(run_id: str) -> dict[str, Any]:
    return api.get_run(services().storage, run_id)


@app.route("/auth/login", methods=["GET"])
def auth_login() -> Response:
    return api.auth_login(services(), app.current_request)


@app.route("/auth/callback", methods=["GET"])
def auth_callback() -> Response:
    return api.auth_callback(services(), app.current_request)


@app.route("/auth/invites", methods=["POST"], authorizer=AUTHORIZER)
def create_invite() -> dict[str, Any]:
    """A one-time login link for a new user: deployed logins need one (contract §5)."""
    return api.create_invite(services(), app.current_request)


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
    return api.run_query(services().query_engine, name, _query_params())


@app.route("/queries/executions/{execution_id}", methods=["GET"], authorizer=AUTHORIZER)
def get_execution(execution_id: str) -> Response:
    return api.get_execution(services().query_engine, execution_id)


@app.route("/dashboard", methods=["GET"], authorizer=AUTHORIZER)
def get_dashboard() -> Response:
    """The dashboard (contract §10) as one `text/html` page."""
    return dashboard.respond(services().query_engine, _query_params())


@app.route("/health", methods=["GET"], authorizer=AUTHORIZER)
def get_health() -> dict[str, Any]:
    """Users' poll freshness and open gaps, the request budget and any cooldown (§5, §9)."""
    return api.health(services(), _query_params())
