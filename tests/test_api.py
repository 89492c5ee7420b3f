"""The REST API (contract §5) through Chalice's test client: a local lake, the loopback stand-in,
the app's own local S3-event dispatch, DuckDB for queries."""

from __future__ import annotations

import io
import json
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from chalice.test import Client
from extract_helpers import api_calls, connect, make_services, standin  # noqa: F401
from moto import mock_aws

import app
from chalicelib import services as services_module
from chalicelib.services import Services
from spotify_etl.local import dispatching
from spotify_standin import DEMO_USER, FRIEND_USER, StandIn


@dataclass
class Api:
    """The app under Chalice's test client, and the Spotify stand-in behind it."""

    http: Any  # chalice.test's HTTP client
    spotify: StandIn


@pytest.fixture
def api(standin: StandIn, tmp_path: Path) -> Iterator[Api]:  # noqa: F811
    base = make_services(standin, str(tmp_path / "lake"))
    services = dispatching(base.config)
    connect(services, standin)
    services_module.use(services)
    with Client(app.app, stage_name="local") as test_client:
        yield Api(test_client.http, standin)


def _json(response: Any) -> Any:
    return json.loads(response.body)


def _post_run(http: Any, body: Any) -> Any:
    return http.post("/runs", headers={"Content-Type": "application/json"}, body=json.dumps(body))


def _wait_for(http: Any, run_id: str) -> dict[str, Any]:
    """Poll `GET /runs/{id}` until the background run has finished (bounded)."""
    for _ in range(200):
        record = _json(http.get(f"/runs/{run_id}"))
        if record["status"] != "running":
            return record
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_post_runs_answers_202_at_once_and_the_run_completes(api: Api) -> None:
    response = _post_run(api.http, {"datasets": ["plays", "top_items"]})
    assert response.status_code == 202
    body = _json(response)
    assert body["status"] == "running"
    record = _wait_for(api.http, body["run_id"])
    assert record["status"] == "succeeded"
    outcome = record["results"][DEMO_USER]
    assert set(outcome) == {"plays", "top_items"}
    # Every raw object the run wrote was transformed through the app's own S3 event wiring.
    states = [t["state"] for d in outcome.values() for t in d["transforms"].values()]
    assert states and set(states) == {"done"}
    listed = _json(api.http.get("/runs"))
    assert listed["runs"][0]["run_id"] == body["run_id"]


def test_a_retried_post_with_the_same_run_id_runs_once(api: Api) -> None:
    run_id = "20261120T120000Z-abc123"
    first = _post_run(api.http, {"datasets": ["plays"], "run_id": run_id})
    assert first.status_code == 202
    _wait_for(api.http, run_id)
    again = _post_run(api.http, {"datasets": ["plays"], "run_id": run_id})
    assert again.status_code == 202 and _json(again)["run_id"] == run_id
    time.sleep(0.2)  # a second run, were one started, would have called Spotify by now
    assert api_calls(api.spotify)["GET /me/player/recently-played"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"datasets": ["popularity"]}, "unknown dataset"),
        ({"datasets": []}, "non-empty"),
        ({"users": ["bad id!"]}, "user id"),
        ({"run_id": "x; DROP"}, "run_id"),
        ({"colour": "blue"}, "unknown field"),
    ],
)
def test_post_runs_refuses_bad_bodies_with_400(api: Api, body: Any, message: str) -> None:
    response = _post_run(api.http, body)
    assert response.status_code == 400
    error = _json(response)
    assert error["Code"] == "BadRequestError" and message in error["Message"]
    assert api_calls(api.spotify) == {}  # nothing reached Spotify


def test_runs_lookup_errors(api: Api) -> None:
    assert api.http.get("/runs/not-a-run").status_code == 400
    assert api.http.get("/runs/20261120T120000Z-000000").status_code == 404
    assert api.http.get("/runs?limit=0").status_code == 400
    assert api.http.get("/runs?colour=blue").status_code == 400


def test_queries_are_listed_with_their_parameters(api: Api) -> None:
    listed = _json(api.http.get("/queries"))["queries"]
    by_name = {q["name"]: q for q in listed}
    assert set(by_name) == {
        "daily_listening", "top_artists", "top_tracks", "genres", "listening_clock",
        "playlist_changes", "top_items_movement", "top_albums", "weekday_hour", "discoveries",
        "top_shows", "skips", "coverage",
    }  # fmt: skip
    limit = next(p for p in by_name["top_artists"]["parameters"] if p["name"] == "limit")
    assert limit["type"] and limit["required"] is False and limit["default"] in (10, "10")
    assert all(q["description"] for q in listed)


def test_a_named_query_answers_rows_after_a_run(api: Api) -> None:
    record = _wait_for(api.http, _json(_post_run(api.http, {"datasets": ["plays"]}))["run_id"])
    assert record["status"] == "succeeded"
    response = api.http.get("/queries/daily_listening?start=2026-11-01&end=2026-11-30")
    assert response.status_code == 200
    answer = _json(response)
    assert answer["columns"] == [
        "date", "plays", "minutes", "distinct_tracks", "distinct_artists",
    ]  # fmt: skip
    assert answer["engine"] == "duckdb" and answer["rows"]
    assert sum(row["plays"] for row in answer["rows"]) == 50  # the newest 50, once each
    again = api.http.get(f"/queries/executions/{answer['execution_id']}")
    assert again.status_code == 200 and _json(again)["rows"] == answer["rows"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/queries/no_such_query", 404),
        ("/queries/top_artists?start=2026-11-02&end=2026-11-01", 400),
        ("/queries/top_artists?start=2026-11-01&end=2026-11-02&limit=1001", 400),
        ("/queries/top_artists?start=2026-11-01&end=2026-11-02&colour=blue", 400),
        ("/queries/top_artists?start=2026-11-01'%20OR%201=1&end=2026-11-02", 400),
        ("/queries/listening_clock?start=2026-11-01&end=2026-11-02&tz=Mars/Olympus", 400),
        ("/queries/playlist_changes?playlist=p&date=2026-11-01", 400),
        ("/queries/executions/nope!", 400),
    ],
)
def test_bad_query_requests_are_4xx_never_5xx(api: Api, path: str, status: int) -> None:
    response = api.http.get(path)
    assert response.status_code == status, response.body
    assert set(_json(response)) == {"Code", "Message"}


def test_users_are_listed_without_tokens_and_can_be_disconnected(api: Api) -> None:
    listed = _json(api.http.get("/users"))["users"]
    assert [u["user_id"] for u in listed] == [DEMO_USER]
    assert api.spotify.refresh_token(DEMO_USER)[:6] not in json.dumps(listed)
    assert api.http.delete("/users/nobody").status_code == 404
    assert api.http.delete("/users/bad%20id!").status_code == 400
    assert api.http.delete(f"/users/{DEMO_USER}").status_code == 200
    assert _json(api.http.get("/users"))["users"] == []


def test_connecting_an_account_through_the_auth_routes(
    standin: StandIn,  # noqa: F811
    tmp_path: Path,
) -> None:
    redirect = "http://127.0.0.1:8765/auth/callback"
    base = make_services(standin, str(tmp_path / "lake"), spotify_redirect_uri=redirect)
    services_module.use(base)
    standin.authorize_as = FRIEND_USER
    with Client(app.app, stage_name="local") as client:
        http = client.http
        login = http.get("/auth/login")
        assert login.status_code == 302
        authorize = login.headers["Location"]
        assert authorize.startswith(standin.accounts_url + "authorize?")
        # The browser's leg: Spotify's authorize page sends it back with code and state.
        back = requests.get(authorize, allow_redirects=False, timeout=5).headers["Location"]
        assert back.startswith(redirect)
        query = urllib.parse.urlsplit(back).query
        done = http.get(f"/auth/callback?{query}")
        assert done.status_code == 200, done.body
        assert _json(done)["user_id"] == FRIEND_USER
        assert [u["user_id"] for u in _json(http.get("/users"))["users"]] == [FRIEND_USER]
        replay = http.get(f"/auth/callback?{query}")
        assert replay.status_code == 400 and "Message" in _json(replay)
        forged = http.get("/auth/callback?code=x&state=forged.state")
        assert forged.status_code == 400


def test_deployed_post_runs_invokes_the_extract_function_asynchronously(
    standin: StandIn,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Deployed, `POST /runs` queues the record and hands the run to the `extract` function
    (named by the stage's EXTRACT_FUNCTION, as `chalice deploy` names it) with an async invoke."""
    stage = json.loads((Path(app.__file__).parent / ".chalice" / "config.json").read_text())
    function = stage["stages"]["dev"]["environment_variables"]["EXTRACT_FUNCTION"]
    assert function == "spotify-etl-dev-extract"  # <app>-<stage>-<handler name>
    with mock_aws(config={"lambda": {"use_docker": False}}):
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="extract", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = boto3.client("lambda", region_name="us-east-1")
        lam.create_function(
            FunctionName=function,
            Runtime="python3.11",
            Role=role,
            Handler="app.extract",
            Code={"ZipFile": _zip({"app.py": "def extract(event, context):\n    return event\n"})},
        )
        invocations: list[dict[str, Any]] = []
        lam.meta.events.register(
            "provide-client-params.lambda.Invoke", lambda params, **_: invocations.append(params)
        )
        answers: list[int] = []
        lam.meta.events.register(
            "after-call.lambda.Invoke", lambda parsed, **_: answers.append(parsed["StatusCode"])
        )
        base = make_services(standin, str(tmp_path / "lake"), extract_function=function)
        connect(base, standin)
        services_module.use(Services(base.config, boto_client=lambda name: lam))
        with Client(app.app, stage_name="local") as client:
            response = _post_run(client.http, {"datasets": ["plays"], "users": [DEMO_USER]})
            assert response.status_code == 202
            run_id = _json(response)["run_id"]
            # Not run here: queued for the extract function, and reported as running.
            assert _json(client.http.get(f"/runs/{run_id}"))["status"] == "running"
    [call] = invocations
    assert call["FunctionName"] == function and call["InvocationType"] == "Event"
    payload = json.loads(call["Payload"])
    assert payload["run_id"] == run_id and payload["datasets"] == ["plays"]
    assert payload["users"] == [DEMO_USER] and payload["run_at"].endswith("Z")
    assert answers == [202]
    assert api_calls(standin) == {}  # the API itself never called Spotify


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.mark.parametrize("body", [b"", b"  ", b"{}"])
def test_post_runs_body_is_optional_whatever_the_content_type(api: Api, body: bytes) -> None:
    response = api.http.post("/runs", headers={"Content-Type": "application/json"}, body=body)
    assert response.status_code == 202
    _wait_for(api.http, _json(response)["run_id"])


def test_post_runs_with_a_body_that_is_not_json_is_400(api: Api) -> None:
    response = api.http.post("/runs", headers={"Content-Type": "application/json"}, body=b"{x")
    assert response.status_code == 400 and "not JSON" in _json(response)["Message"]


def test_a_forged_callback_before_any_login_is_400_not_5xx(api: Api) -> None:
    response = api.http.get("/auth/callback?code=x&state=bogus")
    assert response.status_code == 400 and _json(response)["Code"] == "StateRejected"


def test_post_runs_for_a_user_who_is_not_connected_is_404(api: Api) -> None:
    response = _post_run(api.http, {"users": ["somebody_else"]})
    assert response.status_code == 404 and "somebody_else" in _json(response)["Message"]
    assert api_calls(api.spotify) == {}


def test_post_runs_retried_after_a_failed_dispatch_runs_once(
    standin: StandIn,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The invoke raised on the first `POST /runs`: the run is queued but was never handed on.
    The client's retry with the same run_id dispatches it (instead of answering 202 and never
    running it); a third retry, after a successful dispatch, starts nothing more."""
    invocations: list[dict[str, Any]] = []

    class FlakyLambda:
        def invoke(self, **params: Any) -> dict[str, Any]:
            invocations.append(params)
            if len(invocations) == 1:
                raise ConnectionError("lambda endpoint unreachable")
            return {"StatusCode": 202}

    base = make_services(standin, str(tmp_path / "lake"), extract_function="extract-fn")
    connect(base, standin)
    services_module.use(Services(base.config, boto_client=lambda name: FlakyLambda()))
    body = {"datasets": ["plays"], "run_id": "20261124T063000Z-1a2b3c"}
    with Client(app.app, stage_name="local") as client:
        first = _post_run(client.http, body)
        assert first.status_code == 500 and "retry with the same run_id" in first.body.decode()
        second = _post_run(client.http, body)
        assert second.status_code == 202
        third = _post_run(client.http, body)
        assert third.status_code == 202
    assert len(invocations) == 2  # the failed one and the retry; not the third
    assert json.loads(invocations[1]["Payload"])["run_id"] == body["run_id"]
