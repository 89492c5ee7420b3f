"""`spotify-etl bootstrap --stage S`: the AWS resources `chalice deploy` does not create.

The lake bucket (locked down, versioned), the Glue database and tables (from `tables.py`, with
partition projection), the `*_latest` views (through Athena, from the SQL the local engine uses),
the Athena workgroup, the secret entries and, on request, a Glue crawler and the alerts (an SNS
topic mailing one address, alarms on the poll's errors and staleness). Every step compares what
exists with what is wanted and changes only the difference, so a second run changes nothing and
says so. Desired states are built by pure functions; the `ensure_*` functions hold the side
effects and return what they changed.
"""

from __future__ import annotations

import base64
import json
import re
import secrets as random_secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import layout, metrics, secrets
from chalicelib.config import Config, load_config, split_s3_uri
from chalicelib.health import STALE_GRACE_MINUTES, stale_after_minutes
from chalicelib.queries.athena_engine import wait_for_execution
from chalicelib.tables import TABLES, Table, glue_columns, glue_partition_keys
from spotify_etl.configure import StageNames, check_layer, stage_layers

Clients = Callable[[str], Any]
Out = Callable[[str], None]

PROJECT_DIR = Path(__file__).resolve().parent.parent
ATHENA_RESULTS_PREFIX = "athena-results/"
ATHENA_RESULTS_DAYS = 7
USED_NONCES_PREFIX = "state/auth/nonces/"  # where auth.py records spent login states
# With versioning on, an overwritten or deleted object keeps its old version. Raw's are kept
# for good (raw is write-once: an old version of it exists only because a bug touched it);
# everything else is rebuilt from raw or rewritten every poll, so its old versions go after
# a month, long enough to notice a bug and restore what it overwrote.
OLD_VERSIONS_KEPT_DAYS = 30
REWRITTEN_PREFIXES = (
    layout.CURATED_PREFIX,
    layout.QUARANTINE_PREFIX,
    layout.RUNS_PREFIX,
    layout.STATE_PREFIX,
)
# Athena refuses a cutoff under 10 MB. 1 GB is far above what a personal lake scans per query
# and stops a runaway query at $0.005.
BYTES_SCANNED_CUTOFF = 1024**3
# Partition projection range: Spotify started in 2008, so no play, save or run can be older;
# NOW+1DAYS covers a run at 23:59 UTC whose partition date is "tomorrow" for a lagging clock.
PROJECTION_RANGE = "2008-01-01,NOW+1DAYS"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
VIEW_QUERY_WAIT_SECONDS = 60


class BootstrapError(Exception):
    """Something bootstrap cannot fix by itself; the message says what to do."""


@dataclass(frozen=True)
class Lake:
    """Where the lake lives: `s3://bucket[/prefix]`."""

    bucket: str
    prefix: str  # "" or "some/prefix/"

    @classmethod
    def from_uri(cls, uri: str) -> Lake:
        if not uri.startswith("s3://"):
            raise BootstrapError(f"bootstrap needs an s3:// LAKE_URI, not {uri!r}")
        bucket, prefix = split_s3_uri(uri)
        prefix = prefix.strip("/")
        return cls(bucket, prefix + "/" if prefix else "")

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


# --- entry points ---------------------------------------------------------------------------


def stage_config(stage: str, base: Config, project_dir: Path = PROJECT_DIR) -> Config:
    """The `Config` a deployed stage runs with: its variables from `.chalice/config.json`.

    The Spotify app's id and secret and the region come from `base` (the caller's environment):
    they are what bootstrap stores, never part of config.json.
    """
    chalice_config = json.loads((project_dir / ".chalice" / "config.json").read_text())
    try:
        variables = chalice_config["stages"][stage]["environment_variables"]
    except KeyError as error:
        raise BootstrapError(f"no stage {stage!r} in .chalice/config.json") from error
    return load_config(variables).replace(
        spotify_client_id=base.spotify_client_id,
        spotify_client_secret=base.spotify_client_secret,
        aws_region=base.aws_region,
    )


def bootstrap_stage(
    config: Config,
    *,
    stage: str,
    with_crawler: bool = False,
    alert_email: str | None = None,
    out: Out = print,
) -> list[str]:
    """The CLI's `bootstrap --stage S`: boto3 clients for the caller's account and region."""
    import boto3

    deployed = stage_config(stage, config)
    session = boto3.session.Session(region_name=deployed.aws_region)
    return bootstrap(
        deployed,
        session.client,
        stage=stage,
        with_crawler=with_crawler,
        alert_email=alert_email,
        out=out,
    )


def bootstrap(
    config: Config,
    clients: Clients,
    *,
    stage: str,
    with_crawler: bool = False,
    alert_email: str | None = None,
    out: Out = print,
    view_wait_seconds: float = VIEW_QUERY_WAIT_SECONDS,
    layers: list[str] | None = None,
) -> list[str]:
    """Create or fix every resource of `stage`; returns what changed (empty: nothing did).

    `layers` (default: the stage's in `.chalice/config.json`) are only checked: a missing one
    is a warning, since `chalice deploy` is what needs it. `alert_email` adds the alerts."""
    lake = Lake.from_uri(config.lake_uri)
    if alert_email is not None:  # checked before anything is created, not half-way through
        check_email(alert_email)
        if not config.freshness_metric:  # the staleness alarm would watch nothing and fire
            raise BootstrapError(
                f"--alert-email: stage {stage} does not publish the staleness metric its alarm "
                f"watches; run `spotify-etl configure --stage {stage} ... --alerts` (it sets "
                "FRESHNESS_METRIC=on) and `chalice deploy`, then bootstrap again"
            )
    region = clients("s3").meta.region_name
    store = secrets.SsmSecretStore(clients("ssm"), config.secrets_path or secrets.DEFAULT_SSM_PATH)
    changed: list[str] = []
    steps: list[Callable[[], list[str]]] = [
        lambda: ensure_bucket(clients("s3"), lake, region),
        lambda: ensure_database(clients("glue"), config.glue_database),
        lambda: ensure_tables(clients("glue"), config.glue_database, lake),
        lambda: ensure_workgroup(clients("athena"), config.athena_workgroup, lake),
        lambda: ensure_views(
            clients("athena"), clients("glue"), config, wait_seconds=view_wait_seconds
        ),
        lambda: ensure_secrets(store, config, out),
    ]
    if with_crawler:
        steps.append(lambda: ensure_crawler(clients("glue"), clients("iam"), config, lake, stage))
    if alert_email is not None:
        email = alert_email
        steps.append(
            lambda: ensure_alerts(
                clients("sns"), clients("cloudwatch"), config, lake, stage, email, out
            )
        )
    for step in steps:
        for change in step():
            out(f"  changed: {change}")
            changed.append(change)
    for arn in stage_layers(stage) if layers is None else layers:
        problem = check_layer(clients("lambda"), arn)
        if problem:  # deploy would fail on it, but nothing here depends on it
            out(f"  warning: {problem}")
    out(f"{len(changed)} change(s)." if changed else "Nothing to change: already bootstrapped.")
    out(f"Next: chalice deploy --stage {stage}")
    return changed


# --- the bucket -----------------------------------------------------------------------------


def public_access_block() -> dict[str, bool]:
    return {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }


def encryption_rules() -> list[dict[str, Any]]:
    # SSE-S3: encrypted at rest without a KMS key, so no function needs kms:* permissions.
    return [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]


def bucket_policy(bucket: str) -> dict[str, Any]:
    """Refuse every request that does not come over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def lifecycle_rules(lake: Lake) -> list[dict[str, Any]]:
    """Athena results and used login nonces expire, old versions too (in a versioned bucket
    an expiry only hides the object). Outside `raw/`, old versions expire after a month.

    Raw stays in its class and keeps every version: small objects gain nothing from
    transitions, and `reprocess` needs them at hand."""
    return [
        {
            "ID": "expire-athena-results",
            "Filter": {"Prefix": lake.prefix + ATHENA_RESULTS_PREFIX},
            "Status": "Enabled",
            "Expiration": {"Days": ATHENA_RESULTS_DAYS},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
        {
            # Used login nonces only need to outlive their state's 10 minutes.
            "ID": "expire-used-login-nonces",
            "Filter": {"Prefix": lake.prefix + USED_NONCES_PREFIX},
            "Status": "Enabled",
            "Expiration": {"Days": 1},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        },
        *(
            {
                "ID": f"expire-old-versions-{prefix.rstrip('/')}",
                "Filter": {"Prefix": lake.prefix + prefix},
                "Status": "Enabled",
                # A delete marker with no version left behind it is clutter in every listing.
                "Expiration": {"ExpiredObjectDeleteMarker": True},
                "NoncurrentVersionExpiration": {"NoncurrentDays": OLD_VERSIONS_KEPT_DAYS},
            }
            for prefix in REWRITTEN_PREFIXES
        ),
    ]


def ensure_bucket(s3: Any, lake: Lake, region: str) -> list[str]:
    bucket = lake.bucket
    changed = []
    if not _bucket_exists(s3, bucket):
        extra = (
            {}
            if region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3.create_bucket(Bucket=bucket, **extra)
        changed.append(f"created bucket {bucket}")

    block = public_access_block()
    if _get(s3.get_public_access_block, "PublicAccessBlockConfiguration", Bucket=bucket) != block:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
        changed.append(f"bucket {bucket}: Block Public Access on")

    rules = encryption_rules()
    current = _get(s3.get_bucket_encryption, "ServerSideEncryptionConfiguration", Bucket=bucket)
    if _strip_bucket_key(current) != rules:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
        changed.append(f"bucket {bucket}: default encryption (SSE-S3)")

    policy = bucket_policy(bucket)
    current_policy = _get(s3.get_bucket_policy, "Policy", Bucket=bucket)
    if current_policy is None or json.loads(current_policy) != policy:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        changed.append(f"bucket {bucket}: policy refusing non-TLS requests")

    # Raw is write-once (contract §3): with versions kept, an overwrite or a delete by a bug
    # leaves the raw object restorable. Once on, versioning can be suspended but never removed.
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        changed.append(f"bucket {bucket}: versioning on (raw can be restored after a bug)")

    wanted = lifecycle_rules(lake)
    if _get(s3.get_bucket_lifecycle_configuration, "Rules", Bucket=bucket) != wanted:
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": wanted}
        )
        changed.append(
            f"bucket {bucket}: lifecycle (Athena results, used login nonces, old versions "
            "outside raw/)"
        )
    return changed


def _bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            return False
        if status == 403:
            raise BootstrapError(
                f"bucket {bucket} exists but these credentials cannot use it: another account "
                "owns it (bucket names are global) or s3:ListBucket is denied. To rename it, "
                "pick another with `spotify-etl configure --stage S --bucket NAME --region R`"
            ) from error
        raise
    return True


def _strip_bucket_key(configuration: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    # S3 reports BucketKeyEnabled: false for SSE-S3 rules; it means nothing without KMS.
    if configuration is None:
        return None
    return [
        {k: v for k, v in rule.items() if k != "BucketKeyEnabled"}
        for rule in configuration["Rules"]
    ]


def _get(call: Callable[..., Any], field: str, **kwargs: Any) -> Any:
    """`call(**kwargs)[field]`, or None when S3 answers that the setting is absent."""
    try:
        return call(**kwargs)[field]
    except ClientError as error:
        # NoSuchBucketPolicy, NoSuchLifecycleConfiguration, NoSuchPublicAccessBlockConfiguration,
        # ServerSideEncryptionConfigurationNotFoundError: all mean "not set".
        code = error.response.get("Error", {}).get("Code", "")
        if code.startswith("NoSuch") or code.endswith("NotFoundError"):
            return None
        raise


# --- the catalog ----------------------------------------------------------------------------


def ensure_database(glue: Any, database: str) -> list[str]:
    try:
        glue.get_database(Name=database)
    except glue.exceptions.EntityNotFoundException:
        glue.create_database(
            DatabaseInput={"Name": database, "Description": "spotify-etl: the curated tables"}
        )
        return [f"created Glue database {database}"]
    return []


def table_input(table: Table, lake: Lake) -> dict[str, Any]:
    """The Glue definition of `table`, from the same columns the transform writes with.

    Date-typed partition projection makes a new partition queryable the moment its file is
    written: no crawler, no `MSCK REPAIR`, no partition API calls.
    """
    part = table.partition.name
    location = lake.uri(f"curated/{table.name}/")
    return {
        "Name": table.name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "EXTERNAL": "TRUE",
            "classification": "parquet",
            "parquet.compression": "SNAPPY",
            "projection.enabled": "true",
            f"projection.{part}.type": "date",
            f"projection.{part}.format": "yyyy-MM-dd",
            f"projection.{part}.range": PROJECTION_RANGE,
            f"projection.{part}.interval": "1",
            f"projection.{part}.interval.unit": "DAYS",
            "storage.location.template": f"{location}{part}=${{{part}}}/",
        },
        "PartitionKeys": glue_partition_keys(table),
        "StorageDescriptor": {
            "Columns": glue_columns(table),
            "Location": location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"serialization.format": "1"},
            },
        },
    }


def ensure_tables(glue: Any, database: str, lake: Lake) -> list[str]:
    changed = []
    for table in TABLES.values():
        wanted = table_input(table, lake)
        try:
            current = glue.get_table(DatabaseName=database, Name=table.name)["Table"]
        except glue.exceptions.EntityNotFoundException:
            glue.create_table(DatabaseName=database, TableInput=wanted)
            changed.append(f"created Glue table {database}.{table.name}")
            continue
        if _table_differs(current, wanted):
            glue.update_table(DatabaseName=database, TableInput=wanted)
            changed.append(f"updated Glue table {database}.{table.name}")
    return changed


def _table_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    descriptor, wanted_descriptor = (
        current.get("StorageDescriptor", {}),
        wanted["StorageDescriptor"],
    )
    return (
        current.get("TableType") != wanted["TableType"]
        or current.get("Parameters", {}) != wanted["Parameters"]
        or current.get("PartitionKeys", []) != wanted["PartitionKeys"]
        or any(descriptor.get(k) != v for k, v in wanted_descriptor.items())
    )


def ensure_views(athena: Any, glue: Any, config: Config, *, wait_seconds: float) -> list[str]:
    """The `*_latest` views, created through Athena from the SQL source the local engine uses.

    A view whose stored SQL already matches is left alone. (Athena keeps a view in Glue as a
    `VIRTUAL_VIEW` whose `ViewOriginalText` wraps the definition; see `view_sql`.)
    """
    from chalicelib.queries import view_definitions

    changed = []
    for name, statement in sorted(view_definitions("athena").items()):
        if view_sql(glue, config.glue_database, name) == _normal(view_body(name, statement)):
            continue
        run_athena(
            athena,
            statement,
            database=config.glue_database,
            workgroup=config.athena_workgroup,
            wait_seconds=wait_seconds,
        )
        changed.append(f"created Athena view {config.glue_database}.{name}")
    return changed


def view_body(name: str, statement: str) -> str:
    """The SELECT of a `CREATE OR REPLACE VIEW <name> AS <select>` statement."""
    head = f"CREATE OR REPLACE VIEW {name} AS"
    if not statement.startswith(head):
        raise BootstrapError(f"view {name}: expected a statement starting with {head!r}")
    return statement.removeprefix(head).strip()


def view_sql(glue: Any, database: str, name: str) -> str | None:
    """The SQL of an Athena view as Glue holds it, or None when there is no such view."""
    try:
        table = glue.get_table(DatabaseName=database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None
    text = table.get("ViewOriginalText", "")
    marker = "/* Presto View: "
    if table.get("TableType") != "VIRTUAL_VIEW" or not text.startswith(marker):
        return None
    encoded = text.removeprefix(marker).removesuffix(" */")
    return _normal(json.loads(base64.b64decode(encoded))["originalSql"])


def _normal(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";")


def run_athena(
    athena: Any,
    sql: str,
    *,
    database: str,
    workgroup: str,
    wait_seconds: float,
    poll_seconds: float = 0.5,
) -> str:
    """Run one statement and wait for it: its execution id, or Athena's reason as an error."""
    execution_id = athena.start_query_execution(
        QueryString=sql,
        QueryExecutionContext={"Database": database},
        WorkGroup=workgroup,
    )["QueryExecutionId"]
    status = wait_for_execution(
        lambda: athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"][
            "Status"
        ],
        wait_seconds=wait_seconds,
        poll_seconds=poll_seconds,
    )
    if status["State"] == "SUCCEEDED":
        return str(execution_id)
    if status["State"] in {"FAILED", "CANCELLED"}:
        reason = status.get("StateChangeReason", "no reason given")
        raise BootstrapError(f"Athena {status['State']}: {reason}\n{sql}")
    raise BootstrapError(f"Athena query {execution_id} still running after {wait_seconds}s")


# --- Athena ---------------------------------------------------------------------------------


def workgroup_configuration(lake: Lake) -> dict[str, Any]:
    """Results in the lake bucket, encrypted, enforced for every client; a per-query cutoff."""
    return {
        "ResultConfiguration": {
            "OutputLocation": lake.uri(ATHENA_RESULTS_PREFIX),
            "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        },
        "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True,
        "BytesScannedCutoffPerQuery": BYTES_SCANNED_CUTOFF,
    }


def ensure_workgroup(athena: Any, name: str, lake: Lake) -> list[str]:
    wanted = workgroup_configuration(lake)
    if name not in _workgroups(athena):
        athena.create_work_group(
            Name=name, Configuration=wanted, Description="spotify-etl named queries"
        )
        return [f"created Athena workgroup {name}"]
    configuration = athena.get_work_group(WorkGroup=name)["WorkGroup"].get("Configuration", {})
    if all(configuration.get(k) == v for k, v in wanted.items()):
        return []
    athena.update_work_group(
        WorkGroup=name,
        ConfigurationUpdates={
            "ResultConfigurationUpdates": wanted["ResultConfiguration"],
            "EnforceWorkGroupConfiguration": wanted["EnforceWorkGroupConfiguration"],
            "PublishCloudWatchMetricsEnabled": wanted["PublishCloudWatchMetricsEnabled"],
            "BytesScannedCutoffPerQuery": wanted["BytesScannedCutoffPerQuery"],
        },
    )
    return [f"updated Athena workgroup {name}"]


def _workgroups(athena: Any) -> set[str]:
    # Listing, not GetWorkGroup: an unknown name is an InvalidRequestException on AWS, which
    # also means other things; the list answers the one question asked.
    names: set[str] = set()
    kwargs: dict[str, str] = {}
    while True:
        page = athena.list_work_groups(**kwargs)
        names |= {w["Name"] for w in page["WorkGroups"]}
        if not page.get("NextToken"):
            return names
        kwargs["NextToken"] = page["NextToken"]


# --- secrets --------------------------------------------------------------------------------


def ensure_secrets(store: secrets.SecretStore, config: Config, out: Out) -> list[str]:
    """The Spotify app's id and secret (from the environment) and a signing key (generated).

    Values are never printed. A value missing from both the store and the environment is left
    for the user, with the command that fills it.
    """
    changed = []
    given = {
        secrets.CLIENT_ID: (config.spotify_client_id, "SPOTIPY_CLIENT_ID"),
        secrets.CLIENT_SECRET: (config.spotify_client_secret, "SPOTIPY_CLIENT_SECRET"),
    }
    for name, (value, variable) in given.items():
        current = store.get(name)
        if value and value != current:
            store.put(name, value)
            changed.append(
                f"secret {name} {'set' if current is None else 'replaced'} from ${variable}"
            )
        elif current is None:
            out(
                f"  missing: secret {name}. Run bootstrap again with {variable} set "
                "(the Spotify app's settings page shows it)."
            )
    if store.get(secrets.SIGNING_KEY) is None:
        store.put(secrets.SIGNING_KEY, random_secrets.token_urlsafe(32))
        changed.append(f"secret {secrets.SIGNING_KEY} generated")
    return changed


# --- optional crawler -----------------------------------------------------------------------


CRAWLER_TABLE_PREFIX = "crawled_"
CRAWLER_POLICY_NAME = "crawl-curated"
CRAWLER_GLUE_ACTIONS = [
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
    "glue:CreatePartition",
    "glue:BatchCreatePartition",
    "glue:UpdatePartition",
    "glue:BatchUpdatePartition",
]


def crawler_role_trust() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "glue.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def crawler_policy(lake: Lake, database: str) -> dict[str, Any]:
    """The crawler reads `curated/` and writes only its own `crawled_*` tables.

    Written out instead of AWS's AWSGlueServiceRole, which grants Glue on every database.
    """
    glue = "arn:aws:glue:*:*:"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{lake.bucket}"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{lake.bucket}/{lake.prefix}curated/*"],
            },
            {
                "Effect": "Allow",
                "Action": CRAWLER_GLUE_ACTIONS,
                "Resource": [
                    f"{glue}catalog",
                    f"{glue}database/{database}",
                    f"{glue}table/{database}/{CRAWLER_TABLE_PREFIX}*",
                ],
            },
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [
                    "arn:aws:logs:*:*:log-group:/aws-glue/crawlers",
                    "arn:aws:logs:*:*:log-group:/aws-glue/crawlers:*",
                ],
            },
        ],
    }


def crawler_input(name: str, role_arn: str, database: str, lake: Lake) -> dict[str, Any]:
    """Schema inference as in the original design, beside (never over) the defined tables.

    Its tables get a `crawled_` prefix: the tables bootstrap defines stay the one source of
    truth, and projection already makes their partitions visible.
    """
    return {
        "Name": name,
        "Role": role_arn,
        "DatabaseName": database,
        "TablePrefix": CRAWLER_TABLE_PREFIX,
        "Targets": {"S3Targets": [{"Path": lake.uri(f"curated/{table}/")} for table in TABLES]},
        "Schedule": "cron(30 6 * * ? *)",  # after the 06:00 UTC daily snapshot
        "SchemaChangePolicy": {
            "UpdateBehavior": "UPDATE_IN_DATABASE",
            "DeleteBehavior": "DEPRECATE_IN_DATABASE",
        },
    }


def ensure_crawler(glue: Any, iam: Any, config: Config, lake: Lake, stage: str) -> list[str]:
    """An optional Glue crawler over `curated/`, with a role that can do only that."""
    changed = []
    role_name = f"spotify-etl-{stage}-crawler"
    try:
        role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role_arn = iam.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=json.dumps(crawler_role_trust())
        )["Role"]["Arn"]
        changed.append(f"created IAM role {role_name}")
    wanted_policy = crawler_policy(lake, config.glue_database)
    try:
        current_policy = iam.get_role_policy(RoleName=role_name, PolicyName=CRAWLER_POLICY_NAME)[
            "PolicyDocument"
        ]
    except iam.exceptions.NoSuchEntityException:
        current_policy = None
    if isinstance(current_policy, str):  # boto3 decodes it; some endpoints send it as text
        current_policy = json.loads(current_policy)
    if current_policy != wanted_policy:
        iam.put_role_policy(
            RoleName=role_name,
            PolicyName=CRAWLER_POLICY_NAME,
            PolicyDocument=json.dumps(wanted_policy),
        )
        changed.append(f"IAM role {role_name}: may read curated/ and write crawled_* tables")

    name = f"spotify-etl-{stage}-curated"
    wanted = crawler_input(name, role_arn, config.glue_database, lake)
    try:
        current_crawler = glue.get_crawler(Name=name)["Crawler"]
    except glue.exceptions.EntityNotFoundException:
        glue.create_crawler(**wanted)
        return [*changed, f"created Glue crawler {name}"]
    if _crawler_differs(current_crawler, wanted):
        glue.update_crawler(**wanted)
        changed.append(f"updated Glue crawler {name}")
    return changed


def _crawler_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    schedule = current.get("Schedule", {}).get("ScheduleExpression")
    paths = [t["Path"] for t in current.get("Targets", {}).get("S3Targets", [])]
    return (
        current.get("Role") != wanted["Role"]
        or current.get("DatabaseName") != wanted["DatabaseName"]
        or current.get("TablePrefix") != wanted["TablePrefix"]
        or schedule != wanted["Schedule"]
        or paths != [t["Path"] for t in wanted["Targets"]["S3Targets"]]
        or current.get("SchemaChangePolicy") != wanted["SchemaChangePolicy"]
    )


# --- alerts (--alert-email) -----------------------------------------------------------------


POLL_HANDLER = "poll_history"  # app.py's history poll, as Chalice names its function
POLL_ERRORS_PERIOD_SECONDS = 3600
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def check_email(address: str) -> None:
    # SNS would refuse it too, but only after the topic exists: refuse it before anything.
    if not _EMAIL.fullmatch(address):
        raise BootstrapError(f"{address!r} is not an email address")


def alert_topic_name(stage: str) -> str:
    return f"spotify-etl-{stage}-alerts"


def poll_errors_alarm(stage: str, function: str, topic_arn: str) -> dict[str, Any]:
    """The poll function failed at least once in an hour.

    The runner contains Spotify's errors in the run record, so a Lambda error here means the
    poll itself broke (a crash, a timeout, the lake unreachable): no play is polled until fixed.
    No invocation at all is not an error; the staleness alarm covers that."""
    return {
        "AlarmName": f"spotify-etl-{stage}-poll-errors",
        "AlarmDescription": f"{function} failed: while it keeps failing, plays older than the "
        f"newest 50 are lost. Its logs: /aws/lambda/{function}",
        "ActionsEnabled": True,
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": function}],
        "Statistic": "Sum",
        "Period": POLL_ERRORS_PERIOD_SECONDS,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }


def staleness_alarm(config: Config, stage: str, topic_arn: str) -> dict[str, Any]:
    """A connected user is stale, as `GET /health` says, or the poll stopped publishing.

    The threshold is `/health`'s own (2 × the poll interval + 30 min). A period is one poll
    interval and the grace: the poll function's timeout is 5 minutes, so two points of a
    healthy poll are at most an interval and 5 minutes apart and every period holds one. An
    empty period (missing data, breaching) means the poll stopped running: stale too."""
    return {
        "AlarmName": f"spotify-etl-{stage}-poll-stale",
        "AlarmDescription": "A connected user was not polled for more than "
        f"{stale_after_minutes(config.history_poll_minutes)} minutes, or the history poll "
        "stopped publishing: GET /health and `spotify-etl doctor` say which.",
        "ActionsEnabled": True,
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        "Namespace": metrics.NAMESPACE,
        "MetricName": metrics.MINUTES_SINCE_POLL,
        "Dimensions": [{"Name": metrics.STAGE_DIMENSION, "Value": config.stage}],
        "Statistic": "Maximum",
        "Period": (config.history_poll_minutes + STALE_GRACE_MINUTES) * 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": float(stale_after_minutes(config.history_poll_minutes)),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "breaching",
    }


def ensure_alerts(
    sns: Any, cloudwatch: Any, config: Config, lake: Lake, stage: str, email: str, out: Out
) -> list[str]:
    """The topic, `email` subscribed to it, and both alarms acting on it."""
    topic_arn, changed = ensure_topic(sns, alert_topic_name(stage))
    changed += ensure_email_subscription(sns, topic_arn, email, out)
    function = StageNames(stage, lake.bucket).function(POLL_HANDLER)
    for alarm in (
        poll_errors_alarm(stage, function, topic_arn),
        staleness_alarm(config, stage, topic_arn),
    ):
        changed += ensure_alarm(cloudwatch, alarm)
    return changed


def ensure_topic(sns: Any, name: str) -> tuple[str, list[str]]:
    """The topic's ARN, and whether it had to be created."""
    for arn in _topics(sns):
        if arn.rsplit(":", 1)[-1] == name:
            return arn, []
    return sns.create_topic(Name=name)["TopicArn"], [f"created SNS topic {name}"]


def ensure_email_subscription(sns: Any, topic_arn: str, email: str, out: Out) -> list[str]:
    """Subscribe `email` unless it is already (a pending subscription counts: subscribing
    again would only send another confirmation mail)."""
    found = email_subscription(_subscriptions(sns, topic_arn), email)
    if found is None:
        sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=email)
        out(f"  note: AWS mailed {email} a confirmation link; alerts arrive once it is opened")
        return [f"subscribed {email} to {topic_arn.rsplit(':', 1)[-1]}"]
    if found == "PendingConfirmation":
        out(f"  note: {email} has not confirmed its subscription yet (see the AWS mail)")
    return []


def email_subscription(subscriptions: list[dict[str, Any]], email: str) -> str | None:
    """The ARN (or `PendingConfirmation`) of `email`'s subscription, None when there is none.
    Addresses compare without case, as mail servers treat at least their domain."""
    for subscription in subscriptions:
        same = subscription.get("Endpoint", "").lower() == email.lower()
        if subscription.get("Protocol") == "email" and same:
            return str(subscription.get("SubscriptionArn"))
    return None


def ensure_alarm(cloudwatch: Any, wanted: dict[str, Any]) -> list[str]:
    """Create or correct one alarm: PutMetricAlarm replaces it whole, so it is called only when
    what CloudWatch holds differs (a second bootstrap changes nothing)."""
    name = wanted["AlarmName"]
    current = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])
    alarms = current["MetricAlarms"]
    if alarms and all(alarms[0].get(k) == v for k, v in wanted.items()):
        return []
    cloudwatch.put_metric_alarm(**wanted)
    return [f"{'updated' if alarms else 'created'} CloudWatch alarm {name}"]


def _topics(sns: Any) -> list[str]:
    arns: list[str] = []
    kwargs: dict[str, str] = {}
    while True:
        page = sns.list_topics(**kwargs)
        arns += [topic["TopicArn"] for topic in page.get("Topics", [])]
        if not page.get("NextToken"):
            return arns
        kwargs["NextToken"] = page["NextToken"]


def _subscriptions(sns: Any, topic_arn: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    kwargs: dict[str, str] = {"TopicArn": topic_arn}
    while True:
        page = sns.list_subscriptions_by_topic(**kwargs)
        found += page.get("Subscriptions", [])
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]
