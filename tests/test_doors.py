"""The doors (issue 8, part 6): invites for deployed logins, a callback that echoes nothing,
and a stage that fails closed when it lost its `STAGE` variable.

The deployed shape runs for real on moto (S3 lake, SSM secrets) behind Chalice's test client,
with the Spotify stand-in as the accounts service.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from chalice import IAMAuthorizer
from chalice.test import Client
from moto import mock_aws

import app
from chalicelib import auth, secrets
from chalicelib import services as services_module
from chalicelib.config import Config, load_config
from chalicelib.services import Services
from chalicelib.storage import Blob, Storage
from spotify_etl.cli import main
from spotify_standin import DEMO_USER, StandIn, demo_world
from tests.extract_helpers import START
from tests.package_helpers import ROOT, copy_project

BUCKET = "spotify-etl-lake-dev"  # the committed dev stage's lake
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/api/"
CALLBACK = API_URL + "auth/callback"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(demo_world(START), redirect_uris=(CALLBACK,)) as running:
        yield running


def deployed_services(standin: StandIn) -> Services:
    """A deployed stage's services (call inside mock_aws): the app's secrets in SSM."""
    config = Config(
        stage="dev",
        lake_uri=f"s3://{BUCKET}",
        query_engine="athena",
        secrets_path="/spotify-etl/dev",
        aws_region="us-east-1",
        spotify_api_url=standin.api_url,
        spotify_accounts_url=standin.accounts_url,
    )
    services = Services(config, boto_client=lambda s: boto3.client(s, region_name="us-east-1"))
    services.client("s3").create_bucket(Bucket=BUCKET)
    services.secrets.put(secrets.CLIENT_ID, standin.client_id)
    services.secrets.put(secrets.CLIENT_SECRET, standin.client_secret)
    services.secrets.put(secrets.SIGNING_KEY, "deployed-signing-key")
    return services


@pytest.fixture
def deployed(standin: StandIn) -> Iterator[Services]:
    with mock_aws():
        services = deployed_services(standin)
        services_module.use(services)
        yield services


@pytest.fixture
def http(deployed: Services) -> Iterator[Any]:
    # A custom-domain-free deployment: API Gateway's host, the `api` stage.
    with Client(app.app, stage_name="local") as client:
        yield client.http


def host_headers() -> dict[str, str]:
    return {"Host": urllib.parse.urlsplit(API_URL).netloc}


def body(response: Any) -> Any:
    return json.loads(response.body)


def path_of(url: str) -> str:
    """The test client's path for a URL of the deployed API (API Gateway's stage stripped)."""
    parts = urllib.parse.urlsplit(url)
    assert url.startswith(API_URL), url
    return parts.path.removeprefix("/api") + (f"?{parts.query}" if parts.query else "")


def new_invite(http: Any, **fields: Any) -> dict[str, Any]:
    response = http.post(
        "/auth/invites", headers={**JSON, **host_headers()}, body=json.dumps(fields)
    )
    assert response.status_code == 200, response.body
    return body(response)


def token_of(url: str) -> str:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["invite"]


# --- invites: the deployed login --------------------------------------------------------------


def test_deployed_login_without_an_invite_is_refused(http: Any, standin: StandIn) -> None:
    response = http.get("/auth/login", headers=host_headers())
    assert response.status_code == 403
    error = body(response)
    assert error["Code"] == "InviteRejected" and "invite" in error["Message"]
    assert "Location" not in response.headers
    assert standin.requests == []  # Spotify is not asked anything


@pytest.mark.parametrize("token", ["x", "A" * 43, "../../state/tokens/demo_listener", "é" * 43])
def test_a_made_up_invite_is_refused(http: Any, token: str) -> None:
    query = urllib.parse.urlencode({"invite": token})
    response = http.get(f"/auth/login?{query}", headers=host_headers())
    assert response.status_code == 403
    assert body(response)["Message"] == "this invite is not valid"


def test_an_invite_logs_in_once(http: Any, deployed: Services, standin: StandIn) -> None:
    made = new_invite(http)
    assert set(made) == {"url", "expires_at"}
    assert made["url"].startswith(API_URL + "auth/login?invite=")
    login = http.get(path_of(made["url"]), headers=host_headers())
    assert login.status_code == 302, login.body
    assert login.headers["Location"].startswith(standin.accounts_url + "authorize?")
    # The user finishes at Spotify and comes back: connected.
    back = requests.get(login.headers["Location"], allow_redirects=False, timeout=5)
    done = http.get(path_of(back.headers["Location"]), headers=host_headers())
    assert done.status_code == 200 and body(done)["user_id"] == DEMO_USER
    # The link is spent: a second login with it is refused, and says why.
    again = http.get(path_of(made["url"]), headers=host_headers())
    assert again.status_code == 403
    assert "already used" in body(again)["Message"]


def test_invite_expiry_is_the_asked_lifetime(http: Any) -> None:
    before = time.time()
    made = new_invite(http, hours=1)
    expires = auth_time(made["expires_at"])
    assert before + 3600 - 1 <= expires <= time.time() + 3600 + 1


def auth_time(stamp: str) -> float:
    from chalicelib.layout import parse_iso

    return parse_iso(stamp).timestamp()


def test_an_expired_invite_is_refused(http: Any, deployed: Services) -> None:
    old = auth.create_invite(deployed.storage, now=time.time() - 7200, lifetime=3600)
    response = http.get(f"/auth/login?invite={old.token}", headers=host_headers())
    assert response.status_code == 403
    assert "expired" in body(response)["Message"]


@pytest.mark.parametrize(
    "fields",
    [{"hours": 0}, {"hours": 169}, {"hours": "24"}, {"hours": True}, {"user": "x"}],
)
def test_bad_invite_requests_are_400(http: Any, fields: dict[str, Any]) -> None:
    response = http.post("/auth/invites", headers=JSON, body=json.dumps(fields))
    assert response.status_code == 400, response.body
    assert list(body(response)) == ["Code", "Message"]


def test_the_lake_keeps_only_the_invite_hash(http: Any, deployed: Services) -> None:
    token = token_of(new_invite(http)["url"])
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert list(deployed.storage.list("state/invites/")) == [f"state/invites/{digest}.json"]
    for key in deployed.storage.list(""):
        blob = deployed.storage.get(key)
        assert blob is not None and token.encode() not in blob.data, key


def test_a_stage_not_set_up_yet_does_not_spend_the_invite(http: Any, deployed: Services) -> None:
    made = new_invite(http)
    deployed.secrets.delete(secrets.SIGNING_KEY)
    fresh = Services(deployed.config, boto_client=deployed.client)  # no cached key
    services_module.use(fresh)
    assert http.get(path_of(made["url"]), headers=host_headers()).status_code == 503
    fresh.secrets.put(secrets.SIGNING_KEY, "set-by-bootstrap-later")
    assert http.get(path_of(made["url"]), headers=host_headers()).status_code == 302


class RacingStorage:
    """A storage whose reads of one key wait until `parties` readers hold the same version:
    every login then passes the check, and only the conditional write can stop the others."""

    def __init__(self, inner: Storage, key: str, parties: int) -> None:
        self.inner, self.key, self.uri = inner, key, inner.uri
        self.barrier = threading.Barrier(parties, timeout=10)

    def get(self, key: str) -> Blob | None:
        blob = self.inner.get(key)
        if key == self.key:
            self.barrier.wait()
        return blob

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("lake", ["s3", "local"])
def test_concurrent_logins_on_one_invite_let_one_through(
    lake: str, standin: StandIn, tmp_path: Path
) -> None:
    with mock_aws():
        services = deployed_services(standin)
        if lake == "local":  # a stage other than `local` over a local lake: the same guard
            config = services.config.replace(
                lake_uri=str(tmp_path / "lake"),
                spotify_client_id=standin.client_id,
                spotify_client_secret=standin.client_secret,
            )
            services = Services(config)
            services.secrets.put(secrets.SIGNING_KEY, "local-signing-key")
        assert auth.invites_required(services.config)
        invite = auth.create_invite(services.storage, now=time.time())
        # check (1 read) and spend (1 read) per login: two rounds of the barrier.
        racing = RacingStorage(services.storage, auth.invite_key(invite.token), parties=4)
        services.__dict__["storage"] = racing
        outcomes: list[str] = []

        def login() -> None:
            try:
                auth.door_login_redirect(services, redirect_uri=CALLBACK, invite=invite.token)
                outcomes.append("in")
            except auth.InviteRejected as error:
                outcomes.append(str(error))

        threads = [threading.Thread(target=login) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert sorted(outcomes) == ["in"] + ["this invite was already used: ask for a new one"] * 3


def test_locally_login_stays_open(standin: StandIn, tmp_path: Path) -> None:
    config = Config(
        lake_uri=str(tmp_path / "lake"),
        spotify_client_id=standin.client_id,
        spotify_client_secret=standin.client_secret,
        spotify_api_url=standin.api_url,
        spotify_accounts_url=standin.accounts_url,
    )
    services_module.use(Services(config))
    with Client(app.app, stage_name="local") as client:
        login = client.http.get("/auth/login")
    assert login.status_code == 302
    assert not auth.invites_required(config)


# --- the callback's error ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "says"),
    [
        ("access_denied", 403, "declined"),
        ("invalid_scope", 403, "scope"),
        ("temporarily_unavailable", 502, "try again later"),
        ("<script>alert(1)</script>", 403, "Spotify did not authorize the connection"),
        ("Call +1-555-0100 to restore your account", 403, "did not authorize the connection"),
    ],
)
def test_the_callback_never_echoes_the_error_parameter(
    http: Any, error: str, status: int, says: str
) -> None:
    query = urllib.parse.urlencode({"error": error, "state": "whatever"})
    response = http.get(f"/auth/callback?{query}", headers=host_headers())
    assert response.status_code == status
    message = body(response)["Message"]
    assert says in message
    assert error not in message and error not in response.body.decode()


# --- fail closed ------------------------------------------------------------------------------

OPEN_ROUTES = {"/auth/login", "/auth/callback"}


def load_app(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    """app.py imported afresh (as a Lambda cold start would) under `env`; the tests' own `app`
    module stays as it was."""
    for name in ("STAGE", "LAKE_URI", "QUERY_ENGINE", "SECRETS_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("app_cold_start", ROOT / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def authorizers(module: Any) -> dict[tuple[str, str], Any]:
    return {
        (path, method): entry.authorizer
        for path, methods in module.app.routes.items()
        for method, entry in methods.items()
    }


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"LAKE_URI": "s3://spotify-etl-lake-dev"}, id="s3-lake-without-STAGE"),
        pytest.param({"LAKE_URI": "s3://lake", "STAGE": "local"}, id="s3-lake-called-local"),
        pytest.param({"STAGE": "dev"}, id="local-lake-called-dev"),
    ],
)
def test_anything_but_a_laptop_requires_iam(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    found = authorizers(load_app(monkeypatch, env))
    assert ("/auth/invites", "POST") in found
    for (path, method), authorizer in found.items():
        if path in OPEN_ROUTES:
            assert authorizer is None, (path, method)
        else:
            assert isinstance(authorizer, IAMAuthorizer), (path, method)


def test_a_laptop_runs_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found = authorizers(load_app(monkeypatch, {"LAKE_URI": str(tmp_path / "lake")}))
    assert set(found.values()) == {None}
    assert load_config({}).is_local and not load_config({"LAKE_URI": "s3://b"}).is_local


# --- `spotify-etl invite` ---------------------------------------------------------------------


@pytest.fixture
def dev_bucket() -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def test_cli_invite_writes_the_same_invite_and_prints_its_link(
    dev_bucket: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invite", "--stage", "dev", "--api-url", API_URL, "--hours", "24"]) == 0
    out, err = capsys.readouterr()
    url = out.strip()
    assert url.startswith(API_URL + "auth/login?invite=") and "\n" not in url
    assert "valid until" in err and token_of(url) not in err
    # The record is where the API looks, and the deployed login accepts the link.
    lake = load_config({"LAKE_URI": f"s3://{BUCKET}"})
    services = Services(lake, boto_client=lambda s: boto3.client(s, region_name="us-east-1"))
    [key] = services.storage.list("state/invites/")
    assert key == auth.invite_key(token_of(url))
    auth.check_invite(services.storage, token_of(url), now=time.time())
    with pytest.raises(auth.InviteRejected, match="expired"):
        auth.check_invite(services.storage, token_of(url), now=time.time() + 24 * 3600 + 1)


def test_cli_invite_reads_the_api_url_chalice_recorded(
    dev_bucket: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spotify_etl import invite as invite_module

    project = copy_project(tmp_path / "clone")
    deployed = project / ".chalice" / "deployed"
    deployed.mkdir()
    resources = [
        {"name": "api_handler", "resource_type": "lambda_function"},
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_url": API_URL},
    ]
    (deployed / "dev.json").write_text(json.dumps({"resources": resources}))
    assert invite_module.deployed_api_url("dev", project) == API_URL
    config, url = invite_module.resolve_stage("dev", load_config({}), None, project)
    assert url == API_URL and config.lake_uri == f"s3://{BUCKET}"
    made = invite_module.create_stage_invite(
        config, url, clients=lambda s: boto3.client(s, region_name="us-east-1")
    )
    assert made.url.startswith(API_URL + "auth/login?invite=")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--stage", "dev"], "--api-url"),  # nothing deployed from this folder
        (["--stage", "staging", "--api-url", API_URL], "no stage 'staging'"),
        (["--stage", "local", "--api-url", API_URL], "needs no invite"),
        (["--stage", "dev", "--api-url", "http://evil.example/api"], "https://"),
        (["--stage", "dev", "--api-url", API_URL, "--hours", "0"], "--hours"),
    ],
)
def test_cli_invite_bad_usage_is_exit_2_and_writes_nothing(
    dev_bucket: Any,
    args: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from spotify_etl import invite as invite_module

    monkeypatch.setattr(invite_module, "PROJECT_DIR", copy_project(tmp_path / "clone"))
    monkeypatch.setattr(invite_module, "deployed_api_url", _no_deployment)
    assert main(["invite", *args]) == 2
    captured = capsys.readouterr()
    assert says in captured.err and captured.out == ""
    assert "Contents" not in dev_bucket.list_objects_v2(Bucket=BUCKET)


def _no_deployment(stage: str, project_dir: Path | None = None) -> None:
    return None


def test_cli_invite_when_aws_refuses_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():  # no bucket: what a wrong account or region looks like
        assert main(["invite", "--stage", "dev", "--api-url", API_URL]) == 1
    captured = capsys.readouterr()
    assert "could not write the invite" in captured.err and captured.out == ""
