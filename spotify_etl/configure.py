"""`spotify-etl configure --stage S --bucket NAME --region R [--account ID]` (contract §7).

A stage's resource names live in two places that must agree: its environment variables in
`.chalice/config.json` and its three policy files `.chalice/policy-<stage>-{api,extract,
transform}.json`. Both are written here, from one `StageNames`, so they cannot drift; the
committed dev and prod files are this module's output (a test keeps it so). The transform's
layer — AWS SDK for pandas, whose ARN differs by region, Python version and architecture — is
looked up in `pandas_layers.json`, copied from the layer's own documentation.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib import metrics, secrets
from chalicelib.tables import LATEST_VIEWS, TABLES

APP_NAME = "spotify-etl"
PROJECT_DIR = Path(__file__).resolve().parent.parent
LAYERS_FILE = Path(__file__).with_name("pandas_layers.json")
LAYERS_PAGE = "https://aws-sdk-pandas.readthedocs.io/en/stable/layers.html"
# Chalice packages for the Lambda runtime of the local Python (engineering notes): the layer
# must be the one for that Python.
LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# Functions that import pyarrow (the transform, and reconcile, which re-runs it).
LAYER_FUNCTIONS = ("transform", "reconcile")
EXTRACT_FUNCTIONS = ("poll_history", "daily_snapshot", "extract")

_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_ACCOUNT = re.compile(r"^\d{12}$")


class ConfigureError(Exception):
    """Bad arguments or an unknown region: nothing was written."""


@dataclass(frozen=True)
class StageNames:
    """Every name a deployed stage uses, derived from the stage and its bucket."""

    stage: str
    bucket: str
    region: str = "*"  # "*": policies leave region and account open
    account: str = "*"

    @property
    def glue_database(self) -> str:
        return f"spotify_etl_{self.stage.replace('-', '_')}"

    @property
    def athena_workgroup(self) -> str:
        return f"{APP_NAME}-{self.stage}"

    @property
    def secrets_path(self) -> str:
        return f"/{APP_NAME}/{self.stage}"

    def function(self, handler: str | None = None) -> str:
        """Chalice's names: `<app>-<stage>` for the API, `<app>-<stage>-<handler>` otherwise."""
        return f"{APP_NAME}-{self.stage}" + (f"-{handler}" if handler else "")

    @property
    def partition(self) -> str:
        """China's regions are a partition of their own."""
        return "aws-cn" if self.region.startswith("cn-") else "aws"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    def parameters(self, *secret_names: str) -> list[str]:
        """SSM parameter ARNs of secret-store names, encoded as the store encodes them
        (`client_id` is `client_5fid` in SSM); a `*` segment stays a wildcard."""
        path = self.secrets_path.strip("/")
        return [
            self.arn(
                "ssm",
                f"parameter/{path}/"
                + "/".join(s if s == "*" else secrets.encode_segment(s) for s in name.split("/")),
            )
            for name in secret_names
        ]

    def bucket_arn(self, *prefixes: str) -> list[str]:
        bucket = f"arn:{self.partition}:s3:::{self.bucket}"
        return [f"{bucket}/{prefix}*" for prefix in prefixes] if prefixes else [bucket]


def validate(stage: str, bucket: str, region: str, account: str | None) -> StageNames:
    """The names, or ConfigureError saying which argument is wrong and why."""
    if stage == "local" or not _STAGE.match(stage):
        raise ConfigureError(
            f"--stage {stage!r}: a deployed stage is a lowercase name such as dev or prod "
            "(letters, digits, hyphens; not 'local')"
        )
    if not _BUCKET.match(bucket) or ".." in bucket or bucket.startswith("xn--"):
        raise ConfigureError(
            f"--bucket {bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, "
            "digits, dots and hyphens, starting and ending with a letter or digit)"
        )
    if not _REGION.match(region):
        raise ConfigureError(f"--region {region!r} is not an AWS region such as eu-west-1")
    if account is not None and not _ACCOUNT.match(account):
        raise ConfigureError(f"--account {account!r} is not a 12-digit AWS account id")
    if account is None and region.startswith("cn-"):
        return StageNames(stage, bucket, region, "*")  # the partition needs the region
    return StageNames(stage, bucket, region if account else "*", account or "*")


def pandas_layer(region: str, python: str = LOCAL_PYTHON, arch: str = "x86_64") -> str:
    """The AWS SDK for pandas layer ARN for a region, Python version and architecture."""
    table = json.loads(LAYERS_FILE.read_text())
    try:
        return str(table["layers"][region][python][arch])
    except KeyError:
        raise ConfigureError(
            f"no AWS SDK for pandas {table['version']} layer known for region {region}, "
            f"Python {python}, {arch}: look up its ARN on {LAYERS_PAGE} and put it in `layers` "
            "of transform and reconcile in .chalice/config.json"
        ) from None


def environment(names: StageNames) -> dict[str, str]:
    """The stage's environment variables that name its resources."""
    return {
        "STAGE": names.stage,
        "LAKE_URI": f"s3://{names.bucket}",
        "QUERY_ENGINE": "athena",
        "GLUE_DATABASE": names.glue_database,
        "ATHENA_WORKGROUP": names.athena_workgroup,
        "SECRETS_PATH": names.secrets_path,
        "EXTRACT_FUNCTION": names.function("extract"),
    }


def stage_block(names: StageNames, layer: str) -> dict[str, Any]:
    """The stage's entry in `.chalice/config.json`: one policy file per role, small functions
    but for the transform, which gets pandas/pyarrow from the layer."""

    def function(policy: str, memory: int, timeout: int) -> dict[str, Any]:
        return {
            "iam_policy_file": f"policy-{names.stage}-{policy}.json",
            "lambda_memory_size": memory,
            "lambda_timeout": timeout,
        }

    return {
        "api_gateway_stage": "api",
        "autogen_policy": False,
        "iam_policy_file": f"policy-{names.stage}-api.json",
        "lambda_memory_size": 256,
        "lambda_timeout": 30,
        "tags": {"project": APP_NAME, "stage": names.stage},
        "environment_variables": environment(names),
        "lambda_functions": {
            "api_handler": function("api", 256, 30),
            "poll_history": function("extract", 256, 300),
            "daily_snapshot": function("extract", 256, 900),
            "extract": function("extract", 256, 900),
            "transform": {**function("transform", 1536, 300), "layers": [layer]},
            "reconcile": {**function("transform", 1536, 900), "layers": [layer]},
        },
    }


# What each role may do, in the words of the lake's layout (docs/design.md) and the secret
# store's names (chalicelib/secrets.py). tests/test_iam_policies.py runs each role's handlers
# against moto, checks every S3 key and SSM name they touch is allowed here, and that what a
# role must never touch (the API and the extraction's tokens and watermarks, the signing key) is
# not.
#
# The API serves runs, users, logins and queries: it creates run requests and their dispatch
# markers, spent login nonces and invites, and reads what it reports (run records and their
# transform markers, users' last polls and history watermarks, the quota ledger). It writes no
# token, watermark or marker; of the quota, only the ledger (the callback's `GET /me` counts).
API_READS = (
    "runs/records/",
    "runs/transformed/",
    "runs/dispatched/",
    "state/users/",
    "state/plays/",
    "state/quota/",
    "state/invites/",
)
API_WRITES = (
    "runs/records/",
    "runs/dispatched/",
    "state/auth/nonces/",
    "state/invites/",
    "state/quota/ledger/",
)
# The extraction: its watermarks and caches, token leases, users' last polls, the quota ledger.
EXTRACT_STATE = (
    "state/plays/",
    "state/saved_tracks/",
    "state/playlists/",
    "state/artists/",
    "state/tracks/",
    "state/tokens/",
    "state/users/",
    "state/quota/",
)
# The transform: curated tables, quarantine reports, its markers (deleted when a transient error
# defers an object) and the reconcile cursor.
TRANSFORM_WRITES = ("curated/", "quarantine/", "runs/transformed/", "state/transform/")


def policies(names: StageNames) -> dict[str, dict[str, Any]]:
    """The three roles' policies: `api`, `extract`, `transform`."""
    return {
        role: {"Version": "2012-10-17", "Statement": statements}
        for role, statements in (
            ("api", _api_statements(names)),
            ("extract", _extract_statements(names)),
            ("transform", _transform_statements(names)),
        )
    }


def _api_statements(names: StageNames) -> list[dict[str, Any]]:
    glue = [
        names.arn("glue", "catalog"),
        names.arn("glue", f"database/{names.glue_database}"),
        *(names.arn("glue", f"table/{names.glue_database}/{t}") for t in (*TABLES, *LATEST_VIEWS)),
    ]
    return [
        _logs(names, [None]),
        _statement(
            "LakeBucketForAthena",
            ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
            names.bucket_arn(),
        ),
        _statement("ReadCurated", ["s3:GetObject"], names.bucket_arn("curated/")),
        _statement(
            "AthenaResults",
            [
                "s3:GetObject",
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            names.bucket_arn("athena-results/"),
        ),
        _statement("ReadWhatItReports", ["s3:GetObject"], names.bucket_arn(*API_READS)),
        _statement("RunRequestsAndLogins", ["s3:PutObject"], names.bucket_arn(*API_WRITES)),
        _statement(
            "RunQueries",
            [
                "athena:StartQueryExecution",
                "athena:GetQueryExecution",
                "athena:GetQueryResults",
                "athena:StopQueryExecution",
                "athena:GetWorkGroup",
            ],
            [names.arn("athena", f"workgroup/{names.athena_workgroup}")],
        ),
        _statement(
            "ReadCatalog",
            [
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:GetTables",
                "glue:GetPartition",
                "glue:GetPartitions",
            ],
            glue,
        ),
        _statement(
            "ReadAppSecrets",
            ["ssm:GetParameter"],
            names.parameters(secrets.CLIENT_ID, secrets.CLIENT_SECRET, secrets.SIGNING_KEY),
        ),
        _list_users(names),
        _statement(
            "ConnectAndDisconnectUsers",
            ["ssm:PutParameter", "ssm:DeleteParameter"],  # never read: no token leaves SSM
            names.parameters(secrets.USERS_PREFIX + "*"),
        ),
        _statement(
            "StartExtraction",
            ["lambda:InvokeFunction"],
            [names.arn("lambda", f"function:{names.function('extract')}")],
        ),
    ]


def _extract_statements(names: StageNames) -> list[dict[str, Any]]:
    return [
        _logs(names, EXTRACT_FUNCTIONS),
        _statement("ListLake", ["s3:ListBucket"], names.bucket_arn()),
        # Raw objects are write-once: S3 takes the put only with `If-None-Match: *`, so even a
        # bug in this role cannot overwrite what Spotify answered.
        {
            **_statement("WriteRawOnce", ["s3:PutObject"], names.bucket_arn("raw/")),
            "Condition": {"Null": {"s3:if-none-match": "false"}},
        },
        _statement("ReadRaw", ["s3:GetObject"], names.bucket_arn("raw/")),
        _statement(
            "ExtractionStateAndRuns",
            ["s3:GetObject", "s3:PutObject"],
            names.bucket_arn(*EXTRACT_STATE, "runs/records/"),
        ),
        # The app's id and secret, to refresh tokens; never the login signing key.
        _statement(
            "ReadAppCredentials",
            ["ssm:GetParameter"],
            names.parameters(secrets.CLIENT_ID, secrets.CLIENT_SECRET),
        ),
        _list_users(names),
        _statement(
            "UserTokens",
            ["ssm:GetParameter", "ssm:PutParameter"],
            names.parameters(secrets.USERS_PREFIX + "*", secrets.ENV_REFRESH_TOKEN),
        ),
        {
            **_statement("PublishFreshness", ["cloudwatch:PutMetricData"], ["*"]),
            "Condition": {"StringEquals": {"cloudwatch:namespace": metrics.NAMESPACE}},
        },
    ]


def _transform_statements(names: StageNames) -> list[dict[str, Any]]:
    return [
        _logs(names, LAYER_FUNCTIONS),
        _statement("ListLake", ["s3:ListBucket"], names.bucket_arn()),
        _statement("ReadRaw", ["s3:GetObject"], names.bucket_arn("raw/")),
        _statement(
            "WriteDerived", ["s3:GetObject", "s3:PutObject"], names.bucket_arn(*TRANSFORM_WRITES)
        ),
        _statement("DeferObjects", ["s3:DeleteObject"], names.bucket_arn("runs/transformed/")),
    ]


def _list_users(names: StageNames) -> dict[str, Any]:
    """Listing by path reads everything below the path: the users' folder only, never the
    root, where the signing key lives."""
    folder = secrets.USERS_PREFIX.rstrip("/")
    return _statement(
        "ListUsers",
        ["ssm:GetParametersByPath"],
        names.parameters(folder, folder + "/*"),
    )


def configure(
    stage: str,
    bucket: str,
    region: str,
    account: str | None = None,
    *,
    alerts: bool = False,
    python: str = LOCAL_PYTHON,
    project_dir: Path = PROJECT_DIR,
) -> list[str]:
    """Write the stage into `.chalice/config.json` and its policy files; returns the paths
    changed (empty when all was already so). Variables the stage has beyond its names (e.g.
    `SPOTIPY_REDIRECT_URI`) are kept. `alerts` turns on the staleness metric that the alarms
    of `bootstrap --alert-email` watch (`FRESHNESS_METRIC`; it stays on once set)."""
    names = validate(stage, bucket, region, account)
    layer = pandas_layer(region, python)
    chalice_dir = project_dir / ".chalice"
    config_path = chalice_dir / "config.json"
    config = json.loads(config_path.read_text())
    block = stage_block(names, layer)
    kept = config["stages"].get(stage, {}).get("environment_variables", {})
    block["environment_variables"] = {**kept, **block["environment_variables"]}
    if alerts:
        block["environment_variables"]["FRESHNESS_METRIC"] = "on"
    config["stages"][stage] = block
    files = {config_path: config} | {
        chalice_dir / f"policy-{stage}-{role}.json": policy
        for role, policy in policies(names).items()
    }
    changed = []
    for path, document in files.items():
        text = json.dumps(document, indent=2) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(str(path.relative_to(project_dir)))
    return changed


def stage_layers(stage: str, project_dir: Path = PROJECT_DIR) -> list[str]:
    """The layer ARNs a configured stage's functions use."""
    config = json.loads((project_dir / ".chalice" / "config.json").read_text())
    functions = config["stages"].get(stage, {}).get("lambda_functions", {})
    return sorted({arn for f in functions.values() for arn in f.get("layers", [])})


def check_layer(lambda_client: Any, arn: str) -> str | None:
    """None when the layer version exists in the caller's account and region, else why not,
    naming the ARN to use. (`GetLayerVersion` takes the layer's ARN and needs the same
    permission as `GetLayerVersionByArn`; local AWS stand-ins implement only the former.)"""
    from botocore.exceptions import ClientError

    layer, _, version = arn.rpartition(":")
    try:
        lambda_client.get_layer_version(LayerName=layer, VersionNumber=int(version))
        return None
    except (ClientError, ValueError) as error:
        region = arn.split(":")[3] if arn.count(":") >= 6 else "?"
        try:
            wanted = pandas_layer(lambda_client.meta.region_name)
        except ConfigureError:
            wanted = f"the one {LAYERS_PAGE} lists for your region"
        reason = getattr(error, "response", {}).get("Error", {}).get("Code", str(error))
        return (
            f"layer {arn} (region {region}) cannot be read ({reason}); for "
            f"{lambda_client.meta.region_name} use {wanted}: "
            "`spotify-etl configure --stage S --bucket B --region R` sets it"
        )


def _statement(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _logs(names: StageNames, handlers: tuple[str, ...] | list[None]) -> dict[str, Any]:
    """Each function writes its own log group only (autogen_policy is off: nobody adds it)."""
    groups = [f"log-group:/aws/lambda/{names.function(h)}" for h in handlers]
    return _statement(
        "WriteOwnLogs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        [names.arn("logs", g) + suffix for g in groups for suffix in ("", ":*")],
    )
