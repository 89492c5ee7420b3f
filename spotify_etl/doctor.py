"""`spotify-etl doctor --stage S`: check a real deployment end to end.

What offline tests cannot prove is checked here against the account itself: the secrets are
readable, the catalog holds every table and view, Athena answers a query, the schedules and the
S3 trigger are wired to the deployed functions. Then whether it is doing its job: every user
polled in time, the possible gaps, and whether Spotify is locking the app out — read through
`chalicelib.health`, the same report `GET /health` answers. Each check reports on its own, so
one failure does not hide the others; nothing is changed and no secret value is printed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import health, secrets
from chalicelib.config import Config
from chalicelib.layout import RAW_PREFIX, RAW_SUFFIX
from chalicelib.tables import LATEST_VIEWS, TABLES
from spotify_etl import bootstrap
from spotify_etl.configure import check_layer, stage_layers

APP_NAME = "spotify-etl"
QUERY_WAIT_SECONDS = 60.0
# Partition-pruned: scans one day of one table, yet touches Glue, projection, S3 and results.
PROBE_QUERY = "SELECT count(*) FROM plays WHERE played_date = current_date"


class Problem(Exception):
    """A check that failed; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.check}: {self.detail}"


def check_stage(config: Config, *, stage: str, out: Callable[[str], None] = print) -> bool:
    """The CLI's `doctor --stage S`: checks the stage in the caller's account and region."""
    import boto3

    from chalicelib.schedules import expressions

    deployed = bootstrap.stage_config(stage, config)
    session = boto3.session.Session(region_name=deployed.aws_region)
    findings = run_checks(
        deployed,
        session.client,
        stage=stage,
        schedules=expressions(deployed),
        layers=stage_layers(stage),
    )
    for finding in findings:
        out(finding.line())
    healthy = all(f.ok for f in findings)
    out("All checks passed." if healthy else "Some checks failed: see above.")
    return healthy


def run_checks(
    config: Config,
    clients: bootstrap.Clients,
    *,
    stage: str,
    schedules: Mapping[str, str],
    layers: list[str],
    query_wait_seconds: float = QUERY_WAIT_SECONDS,
    now: datetime | None = None,
) -> list[Finding]:
    """Every check, in order; each one's failure is reported, never raised. `now` (default
    the clock) is the moment poll freshness is judged at."""
    lake = bootstrap.Lake.from_uri(config.lake_uri)
    freshness = _health_report(config, clients, now)
    checks: list[tuple[str, Callable[[], str]]] = [
        ("secrets", lambda: check_secrets(clients("ssm"), config)),
        ("catalog", lambda: check_catalog(clients("glue"), config.glue_database)),
        (
            "athena",
            lambda: check_query(clients("athena"), config, wait_seconds=query_wait_seconds),
        ),
        ("schedules", lambda: check_schedules(clients("events"), stage, schedules)),
        ("transform trigger", lambda: check_trigger(clients("s3"), lake, stage)),
        ("extract function", lambda: check_function(clients("lambda"), config)),
        ("pandas layer", lambda: check_layers(clients("lambda"), layers)),
        ("poll freshness", lambda: check_freshness(freshness())),
        ("open gaps", lambda: check_gaps(freshness())),
        ("cooldown", lambda: check_cooldown(freshness())),
    ]
    findings = []
    for name, check in checks:
        try:
            findings.append(Finding(name, True, check()))
        except Problem as problem:
            findings.append(Finding(name, False, str(problem)))
        except Exception as error:  # an AWS error is a finding too (AccessDenied, ...)
            findings.append(Finding(name, False, _aws_error(error)))
    return findings


def check_secrets(ssm: Any, config: Config) -> str:
    from chalicelib import users

    store = secrets.SsmSecretStore(ssm, config.secrets_path or secrets.DEFAULT_SSM_PATH)
    wanted = (secrets.CLIENT_ID, secrets.CLIENT_SECRET, secrets.SIGNING_KEY)
    missing = [name for name in wanted if not store.get(name)]
    if missing:
        raise Problem(
            f"missing {', '.join(missing)} under {store.path}: run bootstrap with "
            "SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET set"
        )
    connected = users.stored_user_ids(store)
    if not connected:
        raise Problem("no connected user: open /auth/login in a browser")
    return f"app secrets and signing key readable; {len(connected)} connected user(s)"


def check_catalog(glue: Any, database: str) -> str:
    present = set()
    for page in glue.get_paginator("get_tables").paginate(DatabaseName=database):
        present |= {table["Name"] for table in page["TableList"]}
    missing = [name for name in (*TABLES, *LATEST_VIEWS) if name not in present]
    if missing:
        raise Problem(f"{database} lacks {', '.join(missing)}: run bootstrap")
    return f"{database} holds {len(TABLES)} tables and {len(LATEST_VIEWS)} views"


def check_query(athena: Any, config: Config, *, wait_seconds: float) -> str:
    try:
        execution_id = bootstrap.run_athena(
            athena,
            PROBE_QUERY,
            database=config.glue_database,
            workgroup=config.athena_workgroup,
            wait_seconds=wait_seconds,
        )
    except bootstrap.BootstrapError as error:
        raise Problem(str(error)) from None
    return f"a query ran in workgroup {config.athena_workgroup} ({execution_id})"


def check_schedules(events: Any, stage: str, schedules: Mapping[str, str]) -> str:
    """Each schedule's rule (Chalice names it `<function>-event`) is on and targets its function."""
    problems = []
    for handler, expression in sorted(schedules.items()):
        function = f"{APP_NAME}-{stage}-{handler}"
        rule_name = f"{function}-event"
        try:
            rule = events.describe_rule(Name=rule_name)
        except events.exceptions.ResourceNotFoundException:
            problems.append(f"{rule_name} missing (chalice deploy --stage {stage})")
            continue
        if rule.get("ScheduleExpression") != expression:
            problems.append(f"{rule_name} runs {rule.get('ScheduleExpression')}, not {expression}")
        if rule.get("State") != "ENABLED":
            problems.append(f"{rule_name} is {rule.get('State')}")
        targets = events.list_targets_by_rule(Rule=rule_name)["Targets"]
        if not any(t["Arn"].endswith(f":function:{function}") for t in targets):
            problems.append(f"{rule_name} does not target {function}")
    if problems:
        raise Problem("; ".join(problems))
    return ", ".join(f"{h} {e}" for h, e in sorted(schedules.items()))


def check_trigger(s3: Any, lake: bootstrap.Lake, stage: str) -> str:
    function = f"{APP_NAME}-{stage}-transform"
    wanted = {"prefix": lake.prefix + RAW_PREFIX, "suffix": RAW_SUFFIX}
    notification = s3.get_bucket_notification_configuration(Bucket=lake.bucket)
    for trigger in notification.get("LambdaFunctionConfigurations", []):
        rules = trigger.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        filters = {rule["Name"].lower(): rule["Value"] for rule in rules}
        if trigger["LambdaFunctionArn"].endswith(f":function:{function}") and filters == wanted:
            return f"{lake.bucket}/{wanted['prefix']}*{RAW_SUFFIX} -> {function}"
    raise Problem(f"no S3 trigger from {lake.uri(RAW_PREFIX)} to {function}: chalice deploy")


def check_function(lambda_client: Any, config: Config) -> str:
    """`POST /runs` invokes this function by name: it must exist."""
    if not config.extract_function:
        raise Problem("EXTRACT_FUNCTION is not set for this stage in .chalice/config.json")
    try:
        lambda_client.get_function(FunctionName=config.extract_function)
    except lambda_client.exceptions.ResourceNotFoundException:
        raise Problem(f"{config.extract_function} not found: chalice deploy") from None
    return f"{config.extract_function} exists"


def check_layers(lambda_client: Any, layers: list[str]) -> str:
    """The transform imports pyarrow from its layer: without it, every raw object fails."""
    if not layers:
        raise Problem("no layer on transform/reconcile: spotify-etl configure sets it")
    problems = [p for p in (check_layer(lambda_client, arn) for arn in layers) if p]
    if problems:
        raise Problem("; ".join(problems))
    return ", ".join(layers) + " readable"


def _health_report(
    config: Config, clients: bootstrap.Clients, now: datetime | None
) -> Callable[[], dict[str, Any]]:
    """`GET /health`'s report of the deployed lake, read once for the three checks using it."""
    from chalicelib.services import Services

    services = Services(config, boto_client=clients)
    return functools.cache(lambda: health.report(services, now))


# Doctor has two verdicts, and both a stale user and a cooldown FAIL: each means plays are not
# being polled right now, and a play not polled within ~50 plays is gone for good. A possible
# gap passes (with its numbers): it is a loss already suffered, nothing in the deployment to
# fix, and failing on it would keep doctor red for the 30 days it is remembered.


def check_freshness(report: Mapping[str, Any]) -> str:
    """Every connected user's last successful history poll is recent (`/health`'s `stale`)."""
    users, limit = report["users"], report["stale_after_minutes"]
    if not users:
        raise Problem("no connected user: nothing is polled (see the secrets check)")
    stale = [u for u in users if u["stale"]]
    if stale:
        hints = [
            "Plays older than the newest 50 are being lost: see GET /runs and the "
            "poll_history function's logs"
        ]
        if report["cooldown_until"]:
            hints.append("Spotify is locking the app out (cooldown)")
        if any(u["minutes_since_poll"] is None for u in stale):
            hints.append("a user connected just now is polled at the next scheduled poll")
        raise Problem(
            f"{len(stale)} of {len(users)} user(s) not polled within {limit} min: "
            + ", ".join(_last_poll(u) for u in stale)
            + ". "
            + "; ".join(hints)
        )
    return f"{len(users)} user(s) polled within {limit} min: " + ", ".join(
        _last_poll(u) for u in users
    )


def check_gaps(report: Mapping[str, Any]) -> str:
    """Possible gaps in users' history (the oldest play polled was newer than the newest known)."""
    gapped = [u for u in report["users"] if u["open_gaps"]]
    if not gapped:
        return "no possible gap in any user's history"
    return "plays between these moments may be missing: " + "; ".join(
        f"{u['user_id']} {u['open_gaps']} possible gap(s), latest "
        f"{u['latest_gap']['from']} to {u['latest_gap']['to']}"
        for u in gapped
    )


def check_cooldown(report: Mapping[str, Any]) -> str:
    """Spotify is not locking the app out (contract §9); the day's calls against the budget."""
    calls = f"{report['calls_today']} of {report['daily_budget']} calls today"
    until = report["cooldown_until"]
    if until:
        raise Problem(
            f"Spotify locked the app out until {until} ({calls}): no call is made before then. "
            "The quota counts every app of the Spotify developer account"
        )
    return f"no cooldown; {calls}"


def _last_poll(user: Mapping[str, Any]) -> str:
    minutes = user["minutes_since_poll"]
    if minutes is None:
        return f"{user['user_id']} never polled"
    return f"{user['user_id']} {minutes:.0f} min ago"


def _aws_error(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return f"{type(error).__name__}: {error}"
