"""Least privilege, checked against what the code does.

Each role's own handlers run against moto (S3, SSM, CloudWatch) and the Spotify stand-in, with
every AWS call recorded as the IAM request it is (action, resource ARN, condition keys). Every
recorded call must be allowed by that role's policy as `spotify-etl configure` writes it — read
by a small evaluator of the policy JSON below — and what a role must never do is denied: the API
touches no token, watermark or transform marker; the extraction cannot read the signing key nor
overwrite a raw object; the transform cannot write raw objects. The committed dev/prod files
are `configure`'s output (tests/test_configure.py), linted by parliament (tests/test_deploy.py).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from chalice.test import Client
from moto import mock_aws

import app
from chalicelib import datasets, secrets, users
from chalicelib import services as services_module
from chalicelib.config import Config
from chalicelib.extract import runner
from chalicelib.services import Services
from chalicelib.transform import handler as transform
from spotify_etl import configure
from spotify_standin import DEMO_USER, FRIEND_USER, StandIn, demo_world
from tests import transform_fixtures as fx
from tests.extract_helpers import START

REGION, ACCOUNT = "us-east-1", "123456789012"  # moto's default account
STAGE, BUCKET = "iamtest", "spotify-etl-lake-iamtest"
NAMES = configure.StageNames(STAGE, BUCKET, REGION, ACCOUNT)
CALLBACK = f"https://abc123.execute-api.{REGION}.amazonaws.com/api/auth/callback"


# --- what a call is, in IAM's terms ---------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One AWS request as IAM evaluates it."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.action} {self.resource} {dict(self.context) or ''}".strip()


def _parameter_arn(name: str) -> str:
    return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name.lstrip('/')}"


def as_iam(service: str, operation: str, params: dict[str, Any]) -> Call:
    """The IAM action, resource and condition keys of one boto3 call. An operation this does
    not know fails the test: nothing a role does may go unchecked."""
    if service == "s3":
        obj = f"arn:aws:s3:::{params.get('Bucket')}/{params.get('Key')}"
        if operation in ("GetObject", "HeadObject"):
            return Call("s3:GetObject", obj)
        if operation == "PutObject":
            context = {"s3:if-none-match": params.get("IfNoneMatch")}
            context["s3:if-match"] = params.get("IfMatch")
            kept = tuple(sorted((k, v) for k, v in context.items() if v is not None))
            return Call("s3:PutObject", obj, kept)
        if operation == "DeleteObject":
            return Call("s3:DeleteObject", obj)
        if operation in ("ListObjectsV2", "ListObjects"):
            prefix = (("s3:prefix", params.get("Prefix", "")),)
            return Call("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", prefix)
    if service == "ssm":
        if operation in ("GetParameter", "PutParameter", "DeleteParameter"):
            return Call(f"ssm:{operation}", _parameter_arn(params["Name"]))
        if operation == "GetParametersByPath":
            return Call("ssm:GetParametersByPath", _parameter_arn(params["Path"]))
    if service == "cloudwatch" and operation == "PutMetricData":
        return Call(
            "cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", params["Namespace"]),)
        )
    if service == "lambda" and operation == "Invoke":
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{params['FunctionName']}"
        return Call("lambda:InvokeFunction", arn)
    raise AssertionError(f"no IAM mapping for {service}:{operation}: add one to as_iam()")


@dataclass
class Recorder:
    """A boto3 client factory whose clients note every call (and can be told to fail some)."""

    calls: list[Call] = field(default_factory=list)
    # (service, operation, params) -> True: answer that call with S3's "SlowDown" (transient).
    fail: Callable[[str, str, dict[str, Any]], bool] | None = None

    def client(self, service: str) -> Any:
        made = boto3.client(service, region_name=REGION)

        def note(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls.append(as_iam(service, model.name, params))
            if self.fail is not None and self.fail(service, model.name, params):
                error = {"Error": {"Code": "SlowDown", "Message": "injected"}}
                raise ClientError(
                    {**error, "ResponseMetadata": {"HTTPStatusCode": 503}}, model.name
                )

        made.meta.events.register("before-parameter-build", note)
        if service == "lambda":
            # No function exists in moto: an asynchronous invoke is accepted, as AWS would.
            accepted = (SimpleNamespace(status_code=202), {"StatusCode": 202})
            made.meta.events.register("before-call.lambda.Invoke", lambda **_: accepted)
        return made


# --- a small IAM evaluator --------------------------------------------------------------------


def _pattern(text: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM's wildcards: `*` any run of characters (`/` and `:` included), `?` one."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(body, re.IGNORECASE if ignore_case else 0)


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    given = {k.lower(): v for k, v in context.items()}
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            value, values = given.get(key.lower()), _listed(wanted)
            if operator == "StringEquals":
                ok = value is not None and value in values
            elif operator == "StringLike":
                ok = value is not None and any(_pattern(v).fullmatch(value) for v in values)
            elif operator == "Null":
                ok = (value is None) == (values == ["true"])
            else:
                raise AssertionError(f"the evaluator does not know condition {operator}")
            if not ok:
                return False
    return True


def _applies(statement: dict[str, Any], call: Call) -> bool:
    assert "NotAction" not in statement and "NotResource" not in statement
    return (
        any(
            _pattern(a, ignore_case=True).fullmatch(call.action)
            for a in _listed(statement["Action"])
        )
        and any(_pattern(r).fullmatch(call.resource) for r in _listed(statement["Resource"]))
        and _condition_holds(statement.get("Condition", {}), dict(call.context))
    )


def allowed(policy: dict[str, Any], call: Call) -> bool:
    """An explicit Deny wins; otherwise some Allow must apply (IAM's default is deny)."""
    applying = [s for s in policy["Statement"] if _applies(s, call)]
    return not any(s["Effect"] == "Deny" for s in applying) and any(
        s["Effect"] == "Allow" for s in applying
    )


def refused(policy: dict[str, Any], calls: list[Call]) -> list[str]:
    return sorted({str(call) for call in calls if not allowed(policy, call)})


POLICIES = configure.policies(NAMES)


def test_the_evaluator_reads_policies_as_iam_does() -> None:
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/state/*"},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": ["arn:aws:s3:::b/raw/*"],
                "Condition": {"Null": {"s3:if-none-match": "false"}},
            },
            {"Effect": "Deny", "Action": "*", "Resource": "arn:aws:s3:::b/state/secret*"},
        ]
    }
    assert allowed(policy, Call("s3:GetObject", "arn:aws:s3:::b/state/a/b.json"))
    assert allowed(policy, Call("S3:getobject", "arn:aws:s3:::b/state/x"))  # actions: any case
    assert not allowed(policy, Call("s3:GetObject", "arn:aws:s3:::b/State/x"))  # ARNs: exact
    assert not allowed(policy, Call("s3:GetObject", "arn:aws:s3:::b/state/secret.json"))
    assert not allowed(policy, Call("s3:PutObject", "arn:aws:s3:::b/state/x"))
    assert allowed(
        policy, Call("s3:PutObject", "arn:aws:s3:::b/raw/k", (("s3:if-none-match", "*"),))
    )
    assert not allowed(policy, Call("s3:PutObject", "arn:aws:s3:::b/raw/k"))
    assert not allowed(
        policy, Call("s3:PutObject", "arn:aws:s3:::b/raw/k", (("s3:if-match", "e"),))
    )


# --- the deployment the roles run in ----------------------------------------------------------


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(demo_world(START), redirect_uris=(CALLBACK,)) as running:
        yield running


@pytest.fixture
def aws(standin: StandIn) -> Iterator[None]:
    """The stage's bucket and secrets as bootstrap leaves them, one user connected."""
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        store = secrets.SsmSecretStore(boto3.client("ssm", region_name=REGION), NAMES.secrets_path)
        store.put(secrets.CLIENT_ID, standin.client_id)
        store.put(secrets.CLIENT_SECRET, standin.client_secret)
        store.put(secrets.SIGNING_KEY, "signing-key-of-the-stage")
        users.connect_user(store, DEMO_USER, standin.refresh_token(DEMO_USER))
        yield


def stage_config(standin: StandIn, **extra: Any) -> Config:
    """What a deployed function reads from its environment: no Spotify app in it (SSM has it)."""
    return Config(
        stage=STAGE,
        lake_uri=f"s3://{BUCKET}",
        query_engine="athena",
        secrets_path=NAMES.secrets_path,
        extract_function=NAMES.function("extract"),
        aws_region=REGION,
        spotify_api_url=standin.api_url,
        spotify_accounts_url=standin.accounts_url,
        freshness_metric=True,  # the widest the role must allow
        **extra,
    )


def role(standin: StandIn, **extra: Any) -> tuple[Services, Recorder]:
    recorder = Recorder()
    return Services(stage_config(standin, **extra), boto_client=recorder.client), recorder


def extract_everything(standin: StandIn) -> Recorder:
    """The extraction role's handlers: both schedules, twice (watermarks, reused playlists,
    cached tokens), with refresh tokens rotating, and a `SPOTIFY_REFRESH_TOKEN` user too."""
    standin.rotate_refresh_tokens = True
    services, recorder = role(standin, spotify_refresh_token=standin.refresh_token(FRIEND_USER))
    for _ in range(2):
        for group in (datasets.HISTORY, datasets.DAILY):
            record = runner.run_scheduled(services, group, None)
            assert record["status"] in ("succeeded", "partial"), record
    return recorder


def s3_keys(calls: list[Call], action: str) -> set[str]:
    prefix = f"arn:aws:s3:::{BUCKET}/"
    return {c.resource.removeprefix(prefix) for c in calls if c.action == action}


# --- the extraction ---------------------------------------------------------------------------


def test_the_extraction_role_allows_what_extraction_does(aws: None, standin: StandIn) -> None:
    calls = extract_everything(standin).calls
    assert refused(POLICIES["extract"], calls) == []
    # Not vacuous: it wrote raw objects (each with If-None-Match), state, tokens and a metric.
    raw_puts = [c for c in calls if c.action == "s3:PutObject" and "/raw/" in c.resource]
    assert raw_puts and all(("s3:if-none-match", "*") in c.context for c in raw_puts)
    written = s3_keys(calls, "s3:PutObject")
    assert {k.split("/")[1] for k in written if k.startswith("state/")} >= {
        "plays", "playlists", "saved_tracks", "artists", "tokens", "users", "quota",
    }  # fmt: skip
    puts = {c.resource for c in calls if c.action == "ssm:PutParameter"}
    assert _parameter_arn(f"{NAMES.secrets_path}/env/refresh_5ftoken") in puts
    assert any("/users/demo_5flistener/refresh_5ftoken" in p for p in puts)  # rotated
    assert any(c.action == "cloudwatch:PutMetricData" for c in calls)


def test_the_extraction_role_cannot_read_the_signing_key_nor_rewrite_raw() -> None:
    policy = POLICIES["extract"]
    root = NAMES.secrets_path
    signing_key = _parameter_arn(f"{root}/signing_5fkey")
    raw = f"arn:aws:s3:::{BUCKET}/raw/plays/date=2026-11-20/user=u/r.json.gz"
    for call in (
        Call("ssm:GetParameter", signing_key),
        Call("ssm:GetParameters", signing_key),
        # Reading by path returns everything below it: the root would include the key.
        Call("ssm:GetParametersByPath", _parameter_arn(root)),
        Call("ssm:PutParameter", signing_key),
        Call("s3:PutObject", raw),  # an overwrite: no If-None-Match
        Call("s3:PutObject", raw, (("s3:if-match", '"etag"'),)),
        Call("s3:DeleteObject", raw),
        Call("s3:DeleteObjectVersion", raw),
        Call("s3:PutObject", f"arn:aws:s3:::{BUCKET}/curated/plays/x.parquet"),
        Call("s3:PutObject", f"arn:aws:s3:::{BUCKET}/state/invites/x.json"),
        Call("s3:PutObject", f"arn:aws:s3:::{BUCKET}/state/auth/nonces/x.json"),
        Call("cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", "AWS/Lambda"),)),
    ):
        assert not allowed(policy, call), call


# --- the transform ----------------------------------------------------------------------------


def test_the_transform_role_allows_what_the_transform_does(aws: None, standin: StandIn) -> None:
    raw_keys = sorted(s3_keys(extract_everything(standin).calls, "s3:PutObject"))
    raw_keys = [k for k in raw_keys if k.startswith("raw/")]
    # A user's `import-history` (their own credentials) lands account data: names, no ids, so
    # its transform also reads the curated dimensions to find the tracks.
    account = [{"endTime": "2026-01-01 10:00", "artistName": "A", "trackName": "T", "msPlayed": 1}]
    importer = Services(Config(lake_uri=f"s3://{BUCKET}", aws_region=REGION))
    raw_keys += [fx.put_raw(importer.storage, fx.export_envelope(
        "2026-11-20T12:00:00Z", "StreamingHistory_music_0.json", account, format_="account"
    ))]  # fmt: skip
    services, recorder = role(standin)
    # An S3 event for one object, then reconcile while curated writes keep failing (the
    # objects are deferred: markers dropped, the cursor lowered), then a reconcile that works.
    transform.transform_object(services.storage, raw_keys[0])
    recorder.fail = lambda s, op, p: op == "PutObject" and p["Key"].startswith("curated/")
    transform.reconcile(services.storage)
    recorder.fail = None
    summary = transform.reconcile(services.storage)
    assert summary["objects"] == len(raw_keys) - 1 and summary.get("done"), summary

    calls = recorder.calls
    assert refused(POLICIES["transform"], calls) == []
    assert {k.split("/")[0] for k in s3_keys(calls, "s3:PutObject")} >= {"curated", "runs", "state"}
    assert s3_keys(calls, "s3:DeleteObject")  # the deferral dropped markers
    assert any(k.startswith("curated/tracks/") for k in s3_keys(calls, "s3:GetObject"))
    assert not [c for c in calls if c.action.startswith("ssm:")]


def test_the_transform_role_cannot_touch_raw_or_secrets() -> None:
    policy = POLICIES["transform"]
    raw = f"arn:aws:s3:::{BUCKET}/raw/plays/date=2026-11-20/user=u/r.json.gz"
    for call in (
        Call("s3:PutObject", raw, (("s3:if-none-match", "*"),)),
        Call("s3:DeleteObject", raw),
        Call("s3:PutObject", f"arn:aws:s3:::{BUCKET}/state/tokens/u.json"),
        Call("s3:PutObject", f"arn:aws:s3:::{BUCKET}/runs/records/r.json"),
        Call("ssm:GetParameter", _parameter_arn(f"{NAMES.secrets_path}/spotify/client_5fsecret")),
    ):
        assert not allowed(policy, call), call


# --- the API ----------------------------------------------------------------------------------


def _get(http: Any, url: str) -> Any:
    """A request to the deployed URL `url`, sent through the test client (its path after /api)."""
    parts = urllib.parse.urlsplit(url)
    return http.get(parts.path.removeprefix("/api") + (f"?{parts.query}" if parts.query else ""))


def test_the_api_role_allows_what_the_api_does(aws: None, standin: StandIn) -> None:
    extract_everything(standin)  # runs, markers and state for the API to report on
    standin.rotate_refresh_tokens = False
    services, recorder = role(standin, spotify_redirect_uri=CALLBACK)
    [done_run] = [k for k in services.storage.list("runs/records/")][:1]
    services_module.use(services)
    json_type = {"Content-Type": "application/json"}
    with Client(app.app, stage_name="local") as client:
        http = client.http
        invite = json.loads(http.post("/auth/invites", headers=json_type, body="{}").body)
        login = _get(http, invite["url"])
        assert login.status_code == 302, login.body
        standin.authorize_as = FRIEND_USER
        back = requests.get(login.headers["Location"], allow_redirects=False, timeout=5)
        assert _get(http, back.headers["Location"]).status_code == 200
        run = http.post("/runs", headers=json_type, body=json.dumps({"datasets": ["plays"]}))
        assert run.status_code == 202, run.body
        run_id = done_run.removeprefix("runs/records/").removesuffix(".json")
        for path in ("/runs", f"/runs/{run_id}", "/users", "/health"):
            assert http.get(path).status_code == 200, path
        assert http.delete(f"/users/{FRIEND_USER}").status_code == 200

    calls = recorder.calls
    assert refused(POLICIES["api"], calls) == []
    # Not vacuous: it reported transform states, and wrote a run request and a login's state.
    assert any(k.startswith("runs/transformed/") for k in s3_keys(calls, "s3:GetObject"))
    written = {k.split("/")[1] for k in s3_keys(calls, "s3:PutObject")}
    assert written >= {"auth", "invites", "records", "dispatched"}
    assert any(c.action == "lambda:InvokeFunction" for c in calls)


def test_the_api_role_cannot_touch_tokens_watermarks_or_markers() -> None:
    policy = POLICIES["api"]
    lake = f"arn:aws:s3:::{BUCKET}/"
    for call in (
        Call("s3:GetObject", lake + "state/tokens/demo_listener.json"),
        Call("s3:PutObject", lake + "state/tokens/demo_listener.json"),
        Call("s3:PutObject", lake + "state/plays/demo_listener.json"),
        Call("s3:PutObject", lake + "state/playlists/demo_listener.json"),
        Call("s3:PutObject", lake + "state/quota/cooldown.json"),
        Call("s3:PutObject", lake + "state/users/demo_listener.json"),
        Call("s3:PutObject", lake + "runs/transformed/plays/date=2026-11-20/x.json"),
        Call("s3:DeleteObject", lake + "runs/transformed/plays/date=2026-11-20/x.json"),
        Call("s3:PutObject", lake + "raw/plays/date=2026-11-20/user=u/r.json.gz"),
        Call("s3:PutObject", lake + "curated/plays/played_date=2026-11-20/u.parquet"),
        Call("ssm:GetParameter", _parameter_arn(f"{NAMES.secrets_path}/env/refresh_5ftoken")),
        Call("ssm:PutParameter", _parameter_arn(f"{NAMES.secrets_path}/signing_5fkey")),
        # It stores a user's refresh token at the callback and deletes it, never reads one.
        Call("ssm:GetParameter", _parameter_arn(f"{NAMES.secrets_path}/users/u/refresh_5ftoken")),
        Call("ssm:GetParameter", _parameter_arn(f"{NAMES.secrets_path}/users/u/access_5ftoken")),
    ):
        assert not allowed(policy, call), call
