"""Deployed stages: `.chalice/config.json` and the hand-written IAM policies.

What is checked here is what a reviewer would otherwise check by eye: every function has its own
policy file, every policy names the stage's resources (no `*` where a name is known), nobody
forgot what a linter cannot see (logs, Glue's three ARN kinds, Athena's bucket calls, the
extraction function), and parliament, an IAM linter written by others, finds nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string

from chalicelib.config import load_config
from chalicelib.tables import LATEST_VIEWS, TABLES

CHALICE_DIR = Path(__file__).resolve().parent.parent / ".chalice"
CONFIG = json.loads((CHALICE_DIR / "config.json").read_text())
DEPLOYED = ("dev", "prod")
FUNCTIONS = ("api_handler", "poll_history", "daily_snapshot", "extract", "transform", "reconcile")
# The only functions that import pandas/pyarrow: they get them from the layer.
LAYERED = {"transform", "reconcile"}
POLICY_FILES = sorted(CHALICE_DIR.glob("policy-*.json"))


def stage(name: str) -> dict[str, Any]:
    return CONFIG["stages"][name]


def env(name: str) -> dict[str, str]:
    return stage(name)["environment_variables"]


def function_settings(stage_name: str, function: str) -> dict[str, Any]:
    return stage(stage_name)["lambda_functions"][function]


def deployed_name(stage_name: str, function: str) -> str:
    """The Lambda name Chalice gives `function` (the API handler is named after the app)."""
    base = f"{CONFIG['app_name']}-{stage_name}"
    return base if function == "api_handler" else f"{base}-{function}"


def policy_of(stage_name: str, function: str) -> dict[str, Any]:
    path = CHALICE_DIR / function_settings(stage_name, function)["iam_policy_file"]
    return json.loads(path.read_text())


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return policy["Statement"]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allowed(policy: dict[str, Any], action: str) -> set[str]:
    """Every resource `policy` allows `action` on."""
    return {
        resource
        for statement in statements(policy)
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


# --- stages ---------------------------------------------------------------------------------


def test_local_stage_is_untouched() -> None:
    assert stage("local") == {
        "api_gateway_stage": "api",
        # LAKE_URI defaults to ./lake (chalicelib/config.py); not set here, so a user's own
        # LAKE_URI is not overridden by the stage (Chalice gives stage variables precedence).
        "environment_variables": {"STAGE": "local"},
    }


@pytest.mark.parametrize("name", DEPLOYED)
def test_deployed_stage_names_its_resources(name: str) -> None:
    config = load_config(env(name))
    assert config.stage == name
    assert config.is_s3_lake
    assert config.query_engine == "athena"
    assert config.glue_database == f"spotify_etl_{name}"
    assert config.athena_workgroup == f"spotify-etl-{name}"
    assert config.secrets_path == f"/spotify-etl/{name}"
    # Chalice names a deployed function <app>-<stage>-<handler>: POST /runs invokes this one.
    assert config.extract_function == deployed_name(name, "extract")


@pytest.mark.parametrize("name", DEPLOYED)
def test_no_secret_in_config(name: str) -> None:
    # Secrets come from the secret store when deployed, never from config.json (contract §2).
    forbidden = {"SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET", "SPOTIFY_REFRESH_TOKEN"}
    assert not forbidden & set(env(name))
    for function in FUNCTIONS:
        own_env = function_settings(name, function).get("environment_variables", {})
        assert not forbidden & set(own_env)


def test_stages_differ_only_in_names() -> None:
    # prod is dev with other names: a setting changed in one stage only is a mistake. The
    # redirect URI holds each stage's API id once deployed, so it is left out.
    def shape(name: str) -> str:
        settings = json.loads(json.dumps(stage(name)))
        settings["environment_variables"].pop("SPOTIPY_REDIRECT_URI", None)
        return json.dumps(settings).replace(name, "STAGE")

    assert shape("dev") == shape("prod")


@pytest.mark.parametrize("name", DEPLOYED)
def test_every_function_has_settings_and_its_own_policy(name: str) -> None:
    settings = stage(name)
    assert settings["autogen_policy"] is False
    assert set(settings["lambda_functions"]) == set(FUNCTIONS)
    for function in FUNCTIONS:
        fn = function_settings(name, function)
        assert (CHALICE_DIR / fn["iam_policy_file"]).is_file()
        assert fn["iam_policy_file"].startswith(f"policy-{name}-")
        assert {"lambda_memory_size", "lambda_timeout"} <= set(fn)


@pytest.mark.parametrize("name", DEPLOYED)
def test_transform_is_bigger_and_the_api_small(name: str) -> None:
    memory = {f: function_settings(name, f)["lambda_memory_size"] for f in FUNCTIONS}
    timeout = {f: function_settings(name, f)["lambda_timeout"] for f in FUNCTIONS}
    assert memory["transform"] == max(memory.values())
    assert memory["api_handler"] == min(memory.values())
    # API Gateway ends a request at 29 s whatever the Lambda does: no point waiting longer.
    assert timeout["api_handler"] <= 30
    assert all(t <= 900 for t in timeout.values())  # Lambda's own ceiling


@pytest.mark.parametrize("name", DEPLOYED)
def test_only_the_transform_gets_the_pandas_layer(name: str) -> None:
    # Chalice packages for the runtime of the local Python; the layer must be built for it.
    runtime = f"Python{sys.version_info.major}{sys.version_info.minor}"
    for function in FUNCTIONS:
        layers = function_settings(name, function).get("layers", [])
        if function in LAYERED:
            assert len(layers) == 1
            assert f":layer:AWSSDKPandas-{runtime}:" in layers[0]
        else:
            assert layers == []


def test_every_policy_file_is_used() -> None:
    used = {function_settings(name, f)["iam_policy_file"] for name in DEPLOYED for f in FUNCTIONS}
    assert used == {path.name for path in POLICY_FILES}


# --- policies -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_parliament_finds_nothing(path: Path) -> None:
    policy = analyze_policy_string(
        path.read_text(), filepath=str(path), include_community_auditors=True
    )
    assert [(f.issue, f.detail) for f in policy.findings] == []


def test_parliament_does_find_a_bad_policy() -> None:
    # Guards the test above against a linter that silently checks nothing.
    bad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b"}],
    }
    assert analyze_policy_string(json.dumps(bad)).findings


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_no_star_action_or_resource(path: Path) -> None:
    for statement in statements(json.loads(path.read_text())):
        assert statement["Effect"] == "Allow"
        assert not {"NotAction", "NotResource"} & set(statement)
        for action in as_list(statement["Action"]):
            assert "*" not in action, action
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                # CloudWatch's PutMetricData has no resource level: a namespace condition
                # narrows it instead.
                assert as_list(statement["Action"]) == ["cloudwatch:PutMetricData"]
                assert "cloudwatch:namespace" in json.dumps(statement.get("Condition"))
                continue
            # Account and region stay open (config.json is account-agnostic); names never do.
            named = resource.split(":", 5)[5]
            assert not named.startswith("*"), f"unnamed resource {resource}"


@pytest.mark.parametrize("name", DEPLOYED)
def test_policies_name_only_their_stage(name: str) -> None:
    other = next(s for s in DEPLOYED if s != name)
    for function in FUNCTIONS:
        text = json.dumps(policy_of(name, function))
        assert f"-{name}" in text or f"_{name}" in text
        assert other not in text


@pytest.mark.parametrize("name", DEPLOYED)
def test_every_function_can_write_its_own_logs(name: str) -> None:
    # With autogen_policy false nobody adds these: without them a function runs blind.
    for function in FUNCTIONS:
        policy = policy_of(name, function)
        group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{deployed_name(name, function)}"
        assert group in allowed(policy, "logs:CreateLogGroup")
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            assert f"{group}:*" in allowed(policy, action)


@pytest.mark.parametrize("name", DEPLOYED)
def test_lake_access_is_by_prefix(name: str) -> None:
    bucket = "arn:aws:s3:::" + load_config(env(name)).lake_uri.removeprefix("s3://")
    for function in FUNCTIONS:
        policy = policy_of(name, function)
        # Without ListBucket a missing key answers 403 instead of 404, and the pipeline's
        # "absent" becomes an error.
        assert allowed(policy, "s3:ListBucket") == {bucket}
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            for resource in allowed(policy, action):
                prefix = resource.removeprefix(bucket + "/")
                assert prefix != resource and prefix.endswith("/*") and len(prefix) > 2
    extract, transform = policy_of(name, "extract"), policy_of(name, "transform")
    assert f"{bucket}/raw/*" in allowed(extract, "s3:PutObject")
    assert f"{bucket}/raw/*" not in allowed(transform, "s3:PutObject")  # raw is write-once
    assert f"{bucket}/curated/*" in allowed(transform, "s3:PutObject")
    assert f"{bucket}/curated/*" not in allowed(extract, "s3:PutObject")


@pytest.mark.parametrize("name", DEPLOYED)
def test_api_can_query_athena(name: str) -> None:
    config = load_config(env(name))
    api = policy_of(name, "api_handler")
    bucket = "arn:aws:s3:::" + config.lake_uri.removeprefix("s3://")
    assert bucket in allowed(api, "s3:GetBucketLocation")
    assert f"{bucket}/curated/*" in allowed(api, "s3:GetObject")
    assert f"{bucket}/athena-results/*" in allowed(api, "s3:PutObject")
    workgroup = f"arn:aws:athena:*:*:workgroup/{config.athena_workgroup}"
    for action in ("StartQueryExecution", "GetQueryExecution", "GetQueryResults"):
        assert allowed(api, f"athena:{action}") == {workgroup}
    # Glue reads need the catalog, the database and every table and view a query touches.
    database = config.glue_database
    expected = {"arn:aws:glue:*:*:catalog", f"arn:aws:glue:*:*:database/{database}"} | {
        f"arn:aws:glue:*:*:table/{database}/{table}" for table in (*TABLES, *LATEST_VIEWS)
    }
    assert allowed(api, "glue:GetTable") == expected


@pytest.mark.parametrize("name", DEPLOYED)
def test_api_starts_extraction_by_name_and_manages_users(name: str) -> None:
    config = load_config(env(name))
    api = policy_of(name, "api_handler")
    assert allowed(api, "lambda:InvokeFunction") == {
        f"arn:aws:lambda:*:*:function:{config.extract_function}"
    }
    users = f"arn:aws:ssm:*:*:parameter{config.secrets_path}/users/*"
    assert allowed(api, "ssm:PutParameter") == {users}
    assert allowed(api, "ssm:DeleteParameter") == {users}


@pytest.mark.parametrize("name", DEPLOYED)
def test_secrets_stay_under_the_stage_path(name: str) -> None:
    path = load_config(env(name)).secrets_path
    for function in FUNCTIONS:
        policy = policy_of(name, function)
        for action in ("ssm:GetParameter", "ssm:GetParametersByPath", "ssm:PutParameter"):
            for resource in allowed(policy, action):
                assert resource.startswith(f"arn:aws:ssm:*:*:parameter{path}")
    # Only extraction persists rotated refresh tokens; the transform never sees a secret.
    assert allowed(policy_of(name, "extract"), "ssm:PutParameter")
    assert not allowed(policy_of(name, "transform"), "ssm:GetParameter")
