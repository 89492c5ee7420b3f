"""`doctor` against moto, as far as moto goes.

The deployment `chalice deploy` would make is laid out in moto by hand (functions, schedule rules
named as Chalice names them, the S3 trigger), then `doctor` runs for real against it. moto's
Athena answers every query without running it, so the query check proves the call path, not SQL.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from test_bootstrap import register_views_as_athena_does

from chalicelib import secrets, users
from chalicelib.config import Config
from chalicelib.schedules import expressions
from chalicelib.services import Services
from spotify_etl import bootstrap, doctor
from spotify_etl.configure import pandas_layer, stage_layers

REGION = "us-east-1"
STAGE = "dev"
CONFIG = bootstrap.stage_config(
    STAGE,
    Config(spotify_client_id="app-id", spotify_client_secret="app-secret-value", aws_region=REGION),
)
LAKE = bootstrap.Lake.from_uri(CONFIG.lake_uri)


def schedules() -> dict[str, str]:
    return expressions(CONFIG)


def test_the_app_declares_the_schedules_doctor_checks() -> None:
    import app

    declared = {
        source.name: source.schedule_expression.to_string()
        for source in app.app.event_sources
        if hasattr(source, "schedule_expression")
    }
    assert declared == expressions(app.CONFIG)
    assert declared["daily_snapshot"] == "cron(0 6 * * ? *)"


@pytest.fixture
def clients() -> Iterator[bootstrap.Clients]:
    with mock_aws():
        yield functools.cache(lambda service: boto3.client(service, region_name=REGION))


def deploy_as_chalice_would(clients: bootstrap.Clients) -> None:
    iam, lambda_client, events, s3 = (clients(s) for s in ("iam", "lambda", "events", "s3"))
    role = iam.create_role(
        RoleName="spotify-etl-dev",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "")
    arns = {}
    for handler in (*schedules(), "extract", "transform"):
        arns[handler] = lambda_client.create_function(
            FunctionName=f"spotify-etl-{STAGE}-{handler}",
            Runtime="python3.11",
            Role=role,
            Handler=f"app.{handler}",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
    for handler, expression in schedules().items():
        rule = f"spotify-etl-{STAGE}-{handler}-event"
        events.put_rule(Name=rule, ScheduleExpression=expression)
        events.put_targets(Rule=rule, Targets=[{"Id": "1", "Arn": arns[handler]}])
    s3.put_bucket_notification_configuration(
        Bucket=LAKE.bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "LambdaFunctionArn": arns["transform"],
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": "raw/"},
                                {"Name": "suffix", "Value": ".json.gz"},
                            ]
                        }
                    },
                }
            ]
        },
    )


def connect_a_user(clients: bootstrap.Clients, polled: bool = True) -> None:
    store = secrets.SsmSecretStore(clients("ssm"), CONFIG.secrets_path)
    store.put(secrets.refresh_token_name("someone"), "R-refresh")
    if polled:  # as the history poll records it
        lake = Services(CONFIG, boto_client=clients).storage
        users.record_poll(lake, "someone", datetime.now(UTC))


def allow_moto_into_the_lake(clients: bootstrap.Clients) -> None:
    """moto applies the bucket policy's Deny to object requests without the request's TLS
    context, so it refuses every GET and PUT the real S3 would serve over TLS."""
    clients("s3").delete_bucket_policy(Bucket=LAKE.bucket)


def publish_pandas_layer(clients: bootstrap.Clients) -> str:
    """moto has none of AWS's public layers: publish a stand-in of the pandas layer."""
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w") as archive:
        archive.writestr("python/pyarrow/__init__.py", "")
    return str(
        clients("lambda").publish_layer_version(
            LayerName="AWSSDKPandas-Python311",
            Content={"ZipFile": content.getvalue()},
            CompatibleRuntimes=["python3.11"],
        )["LayerVersionArn"]
    )


def check(
    clients: bootstrap.Clients, layers: list[str] | None = None
) -> dict[str, doctor.Finding]:
    layers = stage_layers(STAGE) if layers is None else layers
    findings = doctor.run_checks(
        CONFIG, clients, stage=STAGE, schedules=schedules(), layers=layers
    )
    return {f.check: f for f in findings}


def test_the_schedules_are_read_from_the_app() -> None:
    assert schedules() == {
        "poll_history": "rate(30 minutes)",
        "daily_snapshot": "cron(0 6 * * ? *)",
        "reconcile": "rate(6 hours)",
    }


def test_nothing_deployed_fails_every_check_without_raising(clients: bootstrap.Clients) -> None:
    findings = check(clients)
    assert list(findings) == [
        "secrets",
        "catalog",
        "athena",
        "schedules",
        "transform trigger",
        "extract function",
        "pandas layer",
        "poll freshness",
        "open gaps",
        "cooldown",
    ]
    assert not any(f.ok for f in findings.values())
    assert "run bootstrap" in findings["secrets"].detail
    assert "chalice deploy" in findings["schedules"].detail


def test_bootstrapped_but_not_deployed(clients: bootstrap.Clients) -> None:
    bootstrap.bootstrap(CONFIG, clients, stage=STAGE, out=lambda _: None)
    findings = check(clients)
    # moto registers no views (its Athena runs no DDL): doctor says so, as it would on AWS.
    assert "tracks_latest" in findings["catalog"].detail
    register_views_as_athena_does(clients("glue"), CONFIG.glue_database)
    findings = check(clients)
    assert findings["catalog"].ok
    assert findings["athena"].ok
    assert not findings["secrets"].ok
    assert "no connected user" in findings["secrets"].detail
    assert not findings["schedules"].ok
    assert not findings["extract function"].ok


def test_a_layer_the_account_cannot_read_fails_and_names_the_right_one(
    clients: bootstrap.Clients,
) -> None:
    wrong = "arn:aws:lambda:eu-west-1:336392948345:layer:AWSSDKPandas-Python311:33"
    finding = check(clients, [wrong])["pandas layer"]
    assert not finding.ok
    assert wrong in finding.detail and "ResourceNotFoundException" in finding.detail
    # The region doctor runs in is us-east-1: it names that region's layer.
    assert pandas_layer("us-east-1") in finding.detail
    assert check(clients, [publish_pandas_layer(clients)])["pandas layer"].ok
    assert not check(clients, [])["pandas layer"].ok


def test_a_healthy_deployment_passes(clients: bootstrap.Clients) -> None:
    bootstrap.bootstrap(CONFIG, clients, stage=STAGE, out=lambda _: None)
    allow_moto_into_the_lake(clients)
    register_views_as_athena_does(clients("glue"), CONFIG.glue_database)
    deploy_as_chalice_would(clients)
    connect_a_user(clients)
    findings = check(clients, [publish_pandas_layer(clients)])
    assert {name: f.ok for name, f in findings.items()} == dict.fromkeys(findings, True)
    assert "1 connected user" in findings["secrets"].detail
    lines = "\n".join(f.line() for f in findings.values())
    for value in ("app-secret-value", "R-refresh"):
        assert value not in lines


def test_a_disabled_or_changed_schedule_is_found(clients: bootstrap.Clients) -> None:
    bootstrap.bootstrap(CONFIG, clients, stage=STAGE, out=lambda _: None)
    deploy_as_chalice_would(clients)
    events: Any = clients("events")
    events.disable_rule(Name="spotify-etl-dev-reconcile-event")
    events.put_rule(Name="spotify-etl-dev-poll_history-event", ScheduleExpression="rate(1 day)")
    detail = check(clients)["schedules"].detail
    assert "spotify-etl-dev-reconcile-event is DISABLED" in detail
    assert "runs rate(1 day), not rate(30 minutes)" in detail
