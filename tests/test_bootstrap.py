"""`bootstrap` against moto: every setting on the created resources, and idempotence.

moto's Athena runs no SQL: `CREATE VIEW` reports SUCCEEDED and nothing reaches Glue. What can be
proven offline is that bootstrap sends each view's SQL to Athena, in the stage's workgroup and
database; that Athena accepts the SQL is left to `spotify-etl doctor` on a real deployment.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from parliament import analyze_policy_string

from chalicelib import secrets
from chalicelib.config import Config
from chalicelib.schedules import expressions
from chalicelib.tables import TABLES, glue_columns, glue_partition_keys
from spotify_etl import bootstrap
from spotify_etl.configure import StageNames

REGION = "us-east-1"
BASE = Config(
    spotify_client_id="the-client-id", spotify_client_secret="the-client-secret", aws_region=REGION
)
CONFIG = bootstrap.stage_config("dev", BASE)
ALERTING = CONFIG.replace(freshness_metric=True)  # what `configure --alerts` deploys
BUCKET = CONFIG.lake_uri.removeprefix("s3://")


@pytest.fixture
def clients() -> Iterator[bootstrap.Clients]:
    with mock_aws():
        yield functools.cache(lambda service: boto3.client(service, region_name=REGION))


def run(
    clients: bootstrap.Clients, config: Config = CONFIG, **kwargs: Any
) -> tuple[list[str], str]:
    lines: list[str] = []
    changed = bootstrap.bootstrap(config, clients, stage="dev", out=lines.append, **kwargs)
    return changed, "\n".join(lines)


def view_definitions() -> dict[str, str]:
    from chalicelib.queries import view_definitions

    return view_definitions("athena")


def register_views_as_athena_does(glue: Any, database: str) -> None:
    """What a real Athena leaves in Glue after `CREATE VIEW` (moto's Athena leaves nothing)."""
    for name, statement in view_definitions().items():
        sql = bootstrap.view_body(name, statement)
        encoded = base64.b64encode(json.dumps({"originalSql": sql}).encode()).decode()
        glue.create_table(
            DatabaseName=database,
            TableInput={
                "Name": name,
                "TableType": "VIRTUAL_VIEW",
                "Parameters": {"presto_view": "true", "comment": "Presto View"},
                "ViewOriginalText": f"/* Presto View: {encoded} */",
                "ViewExpandedText": "/* Presto View */",
            },
        )


def athena_statements(athena: Any) -> list[dict[str, Any]]:
    ids = athena.list_query_executions()["QueryExecutionIds"]
    return [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


# --- stage configuration --------------------------------------------------------------------


def test_stage_config_comes_from_chalice_config() -> None:
    assert CONFIG.stage == "dev"
    assert CONFIG.lake_uri.startswith("s3://")
    assert CONFIG.glue_database == "spotify_etl_dev"
    # The Spotify app's secrets come from the caller's environment, never from config.json.
    assert CONFIG.spotify_client_secret == "the-client-secret"
    with pytest.raises(bootstrap.BootstrapError, match="no stage 'qa'"):
        bootstrap.stage_config("qa", BASE)


def test_a_local_lake_is_refused(clients: bootstrap.Clients) -> None:
    with pytest.raises(bootstrap.BootstrapError, match="s3:// LAKE_URI"):
        run(clients, CONFIG.replace(lake_uri="./lake"))


# --- the whole run --------------------------------------------------------------------------


def test_second_run_changes_nothing_and_says_so(clients: bootstrap.Clients) -> None:
    first, first_out = run(clients)
    assert f"created bucket {BUCKET}" in first
    assert len([c for c in first if c.startswith("created Glue table")]) == len(TABLES)
    assert "Next: chalice deploy --stage dev" in first_out

    register_views_as_athena_does(clients("glue"), CONFIG.glue_database)
    second, second_out = run(clients)
    assert second == []
    assert "Nothing to change" in second_out
    assert "Next: chalice deploy --stage dev" in second_out


def test_drift_is_put_back(clients: bootstrap.Clients) -> None:
    run(clients)
    s3, glue = clients("s3"), clients("glue")
    s3.put_public_access_block(
        Bucket=BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": False,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.delete_bucket_policy(Bucket=BUCKET)
    drifted = bootstrap.table_input(TABLES["plays"], bootstrap.Lake.from_uri(CONFIG.lake_uri))
    drifted["StorageDescriptor"]["Columns"] = drifted["StorageDescriptor"]["Columns"][:2]
    glue.update_table(DatabaseName=CONFIG.glue_database, TableInput=drifted)
    register_views_as_athena_does(glue, CONFIG.glue_database)

    changed, _ = run(clients)
    assert changed == [
        f"bucket {BUCKET}: Block Public Access on",
        f"bucket {BUCKET}: policy refusing non-TLS requests",
        f"updated Glue table {CONFIG.glue_database}.plays",
    ]
    assert glue.get_table(DatabaseName=CONFIG.glue_database, Name="plays")["Table"][
        "StorageDescriptor"
    ]["Columns"] == glue_columns(TABLES["plays"])


# --- the bucket -----------------------------------------------------------------------------


def test_bucket_is_locked_down(clients: bootstrap.Clients) -> None:
    run(clients)
    s3 = clients("s3")
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
        True,
    )
    (rule,) = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    (statement,) = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "s3:*"
    assert set(statement["Resource"]) == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_only_athena_results_and_spent_nonces_expire(clients: bootstrap.Clients) -> None:
    run(clients)
    rules = clients("s3").get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    by_prefix = {rule["Filter"]["Prefix"]: rule for rule in rules}
    expiring = {prefix for prefix, rule in by_prefix.items() if "Days" in rule["Expiration"]}
    assert expiring == {"athena-results/", "state/auth/nonces/"}
    assert by_prefix["athena-results/"]["Expiration"] == {"Days": bootstrap.ATHENA_RESULTS_DAYS}
    assert all(rule["Status"] == "Enabled" for rule in rules)
    # raw stays in its class: no transitions, and nothing under raw/ expires.
    assert not any("Transitions" in rule for rule in rules)
    assert not any(prefix.startswith("raw/") or prefix == "" for prefix in by_prefix)


def test_old_versions_expire_everywhere_but_raw(clients: bootstrap.Clients) -> None:
    """Versioning keeps what a write replaces: raw's old versions are the recovery point and
    stay; elsewhere (rewritten every poll, or rebuilt from raw) they go after a month, and
    expired objects do not linger as old versions."""
    run(clients)
    rules = clients("s3").get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    kept = {
        rule["Filter"]["Prefix"]: rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
        for rule in rules
    }
    assert kept == {
        "athena-results/": 1,
        "state/auth/nonces/": 1,
        "curated/": bootstrap.OLD_VERSIONS_KEPT_DAYS,
        "quarantine/": bootstrap.OLD_VERSIONS_KEPT_DAYS,
        "runs/": bootstrap.OLD_VERSIONS_KEPT_DAYS,
        "state/": bootstrap.OLD_VERSIONS_KEPT_DAYS,
    }


def test_versioning_keeps_an_overwritten_raw_object(clients: bootstrap.Clients) -> None:
    changed, _ = run(clients)
    assert f"bucket {BUCKET}: versioning on (raw can be restored after a bug)" in changed
    s3 = clients("s3")
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    s3.delete_bucket_policy(Bucket=BUCKET)  # moto takes its own requests for plain HTTP
    key = "raw/plays/date=2026-11-20/user=u1/run.json.gz"
    first = s3.put_object(Bucket=BUCKET, Key=key, Body=b"the answers")["VersionId"]
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"a bug")
    s3.delete_object(Bucket=BUCKET, Key=key)
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
    assert first in {v["VersionId"] for v in versions}
    original = s3.get_object(Bucket=BUCKET, Key=key, VersionId=first)
    assert original["Body"].read() == b"the answers"


def test_suspended_versioning_is_turned_back_on(clients: bootstrap.Clients) -> None:
    run(clients)
    register_views_as_athena_does(clients("glue"), CONFIG.glue_database)
    s3 = clients("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    changed, _ = run(clients)
    assert changed == [f"bucket {BUCKET}: versioning on (raw can be restored after a bug)"]
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"


def test_nonce_rule_matches_where_auth_writes() -> None:
    from chalicelib import auth, layout

    assert layout.state_key(*auth.NONCE_PREFIX, "n").startswith(bootstrap.USED_NONCES_PREFIX)


def test_lake_prefix_is_honoured(clients: bootstrap.Clients) -> None:
    config = CONFIG.replace(lake_uri=f"s3://{BUCKET}/team/lake")
    run(clients, config)
    rules = clients("s3").get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert {rule["Filter"]["Prefix"] for rule in rules} == {
        "team/lake/athena-results/",
        "team/lake/state/auth/nonces/",
        "team/lake/curated/",
        "team/lake/quarantine/",
        "team/lake/runs/",
        "team/lake/state/",
    }
    table = clients("glue").get_table(DatabaseName=config.glue_database, Name="tracks")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/team/lake/curated/tracks/"


# --- the catalog ----------------------------------------------------------------------------


def test_every_table_is_registered_from_tables_py(clients: bootstrap.Clients) -> None:
    run(clients)
    glue = clients("glue")
    database = CONFIG.glue_database
    assert glue.get_database(Name=database)["Database"]["Name"] == database
    for table in TABLES.values():
        got = glue.get_table(DatabaseName=database, Name=table.name)["Table"]
        descriptor = got["StorageDescriptor"]
        assert got["TableType"] == "EXTERNAL_TABLE"
        assert descriptor["Columns"] == glue_columns(table)
        assert got["PartitionKeys"] == glue_partition_keys(table)
        assert got["PartitionKeys"][0]["Type"] == "date"
        assert descriptor["Location"] == f"s3://{BUCKET}/curated/{table.name}/"
        assert descriptor["SerdeInfo"]["SerializationLibrary"] == bootstrap.PARQUET_SERDE
        assert descriptor["InputFormat"] == bootstrap.PARQUET_INPUT


def test_partition_projection_covers_every_date(clients: bootstrap.Clients) -> None:
    run(clients)
    glue = clients("glue")
    for table in TABLES.values():
        part = table.partition.name
        parameters = glue.get_table(DatabaseName=CONFIG.glue_database, Name=table.name)["Table"][
            "Parameters"
        ]
        assert parameters["projection.enabled"] == "true"
        assert parameters[f"projection.{part}.type"] == "date"
        assert parameters[f"projection.{part}.format"] == "yyyy-MM-dd"
        start, end = parameters[f"projection.{part}.range"].split(",")
        # Spotify launched in 2008: no play, save or run is older. The end follows the clock.
        assert start <= "2008-10-07"
        assert end.startswith("NOW")
        assert parameters["storage.location.template"] == (
            f"s3://{BUCKET}/curated/{table.name}/{part}=${{{part}}}/"
        )


def test_views_are_sent_to_athena(clients: bootstrap.Clients) -> None:
    run(clients)
    statements = athena_statements(clients("athena"))
    definitions = view_definitions()
    assert len(statements) == len(definitions)
    for statement in statements:
        assert statement["WorkGroup"] == CONFIG.athena_workgroup
        assert statement["QueryExecutionContext"]["Database"] == CONFIG.glue_database
    # Exactly the statements of the shared SQL source, one per view.
    assert sorted(s["Query"] for s in statements) == sorted(definitions.values())
    # moto's limit, stated: nothing reached Glue, so only a real Athena can prove the SQL.
    tables = clients("glue").get_tables(DatabaseName=CONFIG.glue_database)["TableList"]
    assert not {t["Name"] for t in tables} & set(definitions)


def test_current_views_are_not_sent_again(clients: bootstrap.Clients) -> None:
    run(clients)
    register_views_as_athena_does(clients("glue"), CONFIG.glue_database)
    before = len(athena_statements(clients("athena")))
    run(clients)
    assert len(athena_statements(clients("athena"))) == before


# --- Athena ---------------------------------------------------------------------------------


def test_workgroup_enforces_results_encryption_and_a_cutoff(clients: bootstrap.Clients) -> None:
    run(clients)
    workgroup = clients("athena").get_work_group(WorkGroup=CONFIG.athena_workgroup)["WorkGroup"]
    configuration = workgroup["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    results = configuration["ResultConfiguration"]
    assert results["OutputLocation"] == f"s3://{BUCKET}/athena-results/"
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert configuration["BytesScannedCutoffPerQuery"] >= 10 * 1024 * 1024  # Athena's minimum


# --- secrets --------------------------------------------------------------------------------


def test_secrets_are_securestrings_and_never_printed(clients: bootstrap.Clients) -> None:
    _, out = run(clients)
    store = secrets.SsmSecretStore(clients("ssm"), CONFIG.secrets_path)
    assert store.get(secrets.CLIENT_ID) == "the-client-id"
    assert store.get(secrets.CLIENT_SECRET) == "the-client-secret"
    signing_key = store.get(secrets.SIGNING_KEY)
    assert signing_key is not None and len(signing_key) >= 32
    parameters = clients("ssm").get_parameters_by_path(Path=CONFIG.secrets_path, Recursive=True)
    assert {p["Type"] for p in parameters["Parameters"]} == {"SecureString"}
    for value in ("the-client-id", "the-client-secret", signing_key):
        assert value not in out


def test_missing_app_secrets_are_left_with_a_message(clients: bootstrap.Clients) -> None:
    config = CONFIG.replace(spotify_client_id=None, spotify_client_secret=None)
    changed, out = run(clients, config)
    assert f"missing: secret {secrets.CLIENT_ID}" in out
    assert "SPOTIPY_CLIENT_SECRET set" in out
    store = secrets.SsmSecretStore(clients("ssm"), CONFIG.secrets_path)
    assert store.get(secrets.CLIENT_ID) is None
    # A second run with the values fills them; the signing key is kept, not regenerated.
    key = store.get(secrets.SIGNING_KEY)
    changed, _ = run(clients)
    assert [c for c in changed if c.startswith("secret")] == [
        f"secret {secrets.CLIENT_ID} set from $SPOTIPY_CLIENT_ID",
        f"secret {secrets.CLIENT_SECRET} set from $SPOTIPY_CLIENT_SECRET",
    ]
    assert store.get(secrets.SIGNING_KEY) == key


# --- optional crawler -----------------------------------------------------------------------


def test_crawler_on_request_only_and_idempotent(clients: bootstrap.Clients) -> None:
    run(clients)
    glue = clients("glue")
    assert glue.get_crawlers()["Crawlers"] == []
    register_views_as_athena_does(glue, CONFIG.glue_database)

    changed, _ = run(clients, with_crawler=True)
    assert changed == [
        "created IAM role spotify-etl-dev-crawler",
        "IAM role spotify-etl-dev-crawler: may read curated/ and write crawled_* tables",
        "created Glue crawler spotify-etl-dev-curated",
    ]
    crawler = glue.get_crawler(Name="spotify-etl-dev-curated")["Crawler"]
    assert crawler["DatabaseName"] == CONFIG.glue_database
    assert crawler["TablePrefix"] == "crawled_"  # never over the tables bootstrap defines
    assert [t["Path"] for t in crawler["Targets"]["S3Targets"]] == [
        f"s3://{BUCKET}/curated/{name}/" for name in TABLES
    ]
    assert crawler["Role"].endswith("role/spotify-etl-dev-crawler")
    assert run(clients, with_crawler=True)[0] == []


def test_crawler_policy_passes_the_linter() -> None:
    lake = bootstrap.Lake.from_uri(CONFIG.lake_uri)
    policy = json.dumps(bootstrap.crawler_policy(lake, CONFIG.glue_database))
    assert analyze_policy_string(policy, include_community_auditors=True).findings == []


# --- alerts (--alert-email) -----------------------------------------------------------------

EMAIL = "me@example.com"
POLL_FUNCTION = "spotify-etl-dev-poll_history"


def alarms(clients: bootstrap.Clients) -> dict[str, dict[str, Any]]:
    found = clients("cloudwatch").describe_alarms()["MetricAlarms"]
    return {alarm["AlarmName"]: alarm for alarm in found}


def test_alerts_only_on_request(clients: bootstrap.Clients) -> None:
    changed, _ = run(clients)
    assert clients("sns").list_topics()["Topics"] == []
    assert alarms(clients) == {}
    assert not any("SNS" in c or "alarm" in c for c in changed)


def test_alert_email_makes_a_topic_a_subscription_and_two_alarms(
    clients: bootstrap.Clients,
) -> None:
    changed, out = run(clients, ALERTING, alert_email=EMAIL)
    alert_changes = [c for c in changed if "SNS" in c or "alarm" in c or "subscribed" in c]
    assert alert_changes == [
        "created SNS topic spotify-etl-dev-alerts",
        f"subscribed {EMAIL} to spotify-etl-dev-alerts",
        "created CloudWatch alarm spotify-etl-dev-poll-errors",
        "created CloudWatch alarm spotify-etl-dev-poll-stale",
    ]
    assert f"changed: subscribed {EMAIL}" in out and "confirmation link" in out

    sns = clients("sns")
    [topic] = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert topic.endswith(":spotify-etl-dev-alerts")
    [subscription] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", EMAIL)

    found = alarms(clients)
    errors, stale = found["spotify-etl-dev-poll-errors"], found["spotify-etl-dev-poll-stale"]
    # the function Chalice deploys for app.py's poll_history on stage dev
    assert StageNames("dev", BUCKET).function("poll_history") == POLL_FUNCTION
    assert "poll_history" in expressions(CONFIG)
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": POLL_FUNCTION}]
    assert (errors["Statistic"], errors["Period"], errors["EvaluationPeriods"]) == ("Sum", 3600, 1)
    assert errors["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert errors["Threshold"] == 1.0

    assert (stale["Namespace"], stale["MetricName"]) == ("spotify-etl", "MinutesSincePoll")
    assert stale["Dimensions"] == [{"Name": "Stage", "Value": "dev"}]
    assert stale["Statistic"] == "Maximum"
    assert stale["ComparisonOperator"] == "GreaterThanThreshold"
    assert stale["Threshold"] == 2 * CONFIG.history_poll_minutes + 30 == 90.0
    # a period holds at least one point of a healthy 30-minute poll (timeout 5 minutes)
    assert stale["Period"] == 3600 and stale["EvaluationPeriods"] == 1
    assert stale["TreatMissingData"] == "breaching"  # a poll that stops publishing is stale
    for alarm in (errors, stale):
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]
        assert alarm["ActionsEnabled"] is True


def test_a_second_run_with_alerts_creates_nothing(clients: bootstrap.Clients) -> None:
    run(clients, ALERTING, alert_email=EMAIL)
    register_views_as_athena_does(clients("glue"), CONFIG.glue_database)
    changed, out = run(clients, ALERTING, alert_email=EMAIL.upper())  # the same address, other case
    assert changed == []
    assert "Nothing to change" in out
    assert len(clients("sns").list_topics()["Topics"]) == 1
    [topic] = [t["TopicArn"] for t in clients("sns").list_topics()["Topics"]]
    assert len(clients("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]) == 1
    assert len(alarms(clients)) == 2


def test_an_alarm_changed_by_hand_is_put_back(clients: bootstrap.Clients) -> None:
    run(clients, ALERTING, alert_email=EMAIL)
    register_views_as_athena_does(clients("glue"), CONFIG.glue_database)
    cloudwatch = clients("cloudwatch")
    stale = alarms(clients)["spotify-etl-dev-poll-stale"]
    keys = bootstrap.staleness_alarm(CONFIG, "dev", "arn").keys()
    cloudwatch.put_metric_alarm(**{**{k: stale[k] for k in keys}, "Threshold": 600.0})
    changed, _ = run(clients, ALERTING, alert_email=EMAIL)
    assert changed == ["updated CloudWatch alarm spotify-etl-dev-poll-stale"]
    assert alarms(clients)["spotify-etl-dev-poll-stale"]["Threshold"] == 90.0


def test_the_staleness_alarm_follows_the_poll_interval() -> None:
    config = CONFIG.replace(history_poll_minutes=15)
    alarm = bootstrap.staleness_alarm(config, "dev", "arn:topic")
    assert alarm["Threshold"] == 60.0  # /health's stale: 2 × 15 + 30
    assert alarm["Period"] == 45 * 60  # an interval and the grace: > 15 min + a 5 min poll


class PendingSns:
    """SNS as it answers before the address confirmed: moto confirms email at once."""

    def __init__(self) -> None:
        self.subscribed: list[str] = []

    def list_subscriptions_by_topic(self, **_: Any) -> dict[str, Any]:
        pending = {"SubscriptionArn": "PendingConfirmation", "Protocol": "email"}
        return {"Subscriptions": [{**pending, "Endpoint": EMAIL}]}

    def subscribe(self, **kwargs: Any) -> None:
        self.subscribed.append(kwargs["Endpoint"])


def test_a_pending_subscription_is_not_sent_again() -> None:
    sns, lines = PendingSns(), []
    assert bootstrap.ensure_email_subscription(sns, "arn:t", EMAIL, lines.append) == []
    assert sns.subscribed == [] and "not confirmed" in lines[0]
    bootstrap.ensure_email_subscription(sns, "arn:t", "other@example.com", lines.append)
    assert sns.subscribed == ["other@example.com"]


def test_alerts_need_the_metric_they_watch(clients: bootstrap.Clients) -> None:
    with pytest.raises(bootstrap.BootstrapError, match="FRESHNESS_METRIC=on"):
        run(clients, alert_email=EMAIL)
    assert clients("s3").list_buckets()["Buckets"] == []
    assert clients("sns").list_topics()["Topics"] == []


def test_a_bad_address_is_refused_before_anything_is_made(clients: bootstrap.Clients) -> None:
    with pytest.raises(bootstrap.BootstrapError, match="not an email address"):
        run(clients, ALERTING, alert_email="me-at-example")
    assert clients("s3").list_buckets()["Buckets"] == []


def test_the_cli_passes_the_alert_email(monkeypatch: pytest.MonkeyPatch) -> None:
    from spotify_etl import cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(bootstrap, "bootstrap_stage", lambda _, **kwargs: seen.update(kwargs))
    assert cli.main(["bootstrap", "--stage", "dev", "--alert-email", EMAIL]) == 0
    assert seen["alert_email"] == EMAIL and seen["stage"] == "dev"
    assert cli.main(["bootstrap", "--stage", "dev"]) == 0
    assert seen["alert_email"] is None
    with pytest.raises(SystemExit) as refused:
        cli.main(["bootstrap", "--stage", "dev", "--alert-email", "nobody"])
    assert refused.value.code == 2
