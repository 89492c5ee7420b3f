"""`spotify-etl`: the command line (contract §7). Each command is a thin shell over chalicelib."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from chalicelib import services as services_module
from chalicelib.config import load_config
from chalicelib.datasets import NAMES as DATASETS
from chalicelib.layout import try_parse_iso
from spotify_etl.local import local_session
from spotify_etl.report import format_run, render

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage: exit 2 with the message."""


class CommandFailed(Exception):
    """The command could not do its job: exit 1 with the message."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as error:
        print(f"spotify-etl: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CommandFailed as error:
        print(f"spotify-etl: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotify-etl",
        description="A Spotify data lake: extract, transform and query, locally or on AWS.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="the whole pipeline on the bundled sample, a few simulated days, then answers",
        description="Run extraction and transform on the bundled offline sample for a few "
        "simulated days into a local lake, then print answers from every named query family.",
    )
    demo.add_argument("--lake", default="./demo-lake", help="demo lake directory (recreated)")
    demo.add_argument("--days", type=int, default=3, help="simulated days (default 3)")
    demo.add_argument(
        "--quota-lockout",
        action="store_true",
        help="let Spotify lock the app out for five hours on the last day (429 QUOTA_EXCEEDED)",
    )
    demo.set_defaults(handler=cmd_demo)

    run = commands.add_parser(
        "run",
        help="one extraction run (and, locally, its transforms)",
        description="Run one extraction. Exit 0 when it succeeded or was partial, 1 when it "
        "failed, 2 on bad usage.",
    )
    run.add_argument(
        "--datasets",
        nargs="+",
        choices=DATASETS,
        metavar="DATASET",
        help=f"datasets to extract (default all): {', '.join(DATASETS)}",
    )
    run.add_argument("--users", nargs="+", metavar="USER_ID", help="users (default all connected)")
    run.add_argument(
        "--at",
        type=_timestamp,
        metavar="TIMESTAMP",
        help="the moment the run takes as now (ISO 8601; default the real clock)",
    )
    run.set_defaults(handler=cmd_run)

    query = commands.add_parser(
        "query",
        help="run a named query",
        description="Run a named query (see `spotify-etl query --list`).",
    )
    query.add_argument("name", nargs="?", help="query name")
    query.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a parameter, repeatable (e.g. --param start=2026-11-01)",
    )
    query.add_argument("--format", choices=("table", "json", "csv"), default="table")
    query.add_argument("--list", action="store_true", help="list the named queries")
    query.set_defaults(handler=cmd_query)

    reprocess = commands.add_parser(
        "reprocess",
        help="rebuild curated/ from raw/",
        description="Delete curated/ and transform every raw object again.",
    )
    reprocess.set_defaults(handler=cmd_reprocess)

    importer = commands.add_parser(
        "import-history",
        help="import Spotify's data download (streaming history of any age)",
        description="Import my_spotify_data.zip (extended streaming history or account data) "
        "or its JSON files into the configured lake (local, or s3:// with your AWS "
        "credentials). Formats are told apart per file; video history and other files are "
        "skipped and listed; network identifiers (IP addresses, user agents) are dropped before "
        "anything is written. Needs no Spotify app. Exit 0 when every file was imported, 1 when "
        "one could not be transformed, 2 on bad usage or input that is not an export (then "
        "nothing is written).",
    )
    importer.add_argument("paths", nargs="+", metavar="PATH", help="zip or JSON file(s)")
    importer.add_argument("--user", required=True, metavar="USER_ID", help="whose history it is")
    importer.add_argument(
        "--at",
        type=_timestamp,
        metavar="TIMESTAMP",
        help="the moment the import takes as now (ISO 8601; default the real clock)",
    )
    importer.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="deployed lake: how long to wait for the transforms (default 600)",
    )
    importer.set_defaults(handler=cmd_import_history)

    connect = commands.add_parser(
        "connect",
        help="connect a Spotify account (OAuth through a loopback callback)",
        description="Open Spotify's authorize page and store the refresh token for this user.",
    )
    connect.add_argument("--port", type=int, default=8765, help="loopback callback port (8765)")
    connect.set_defaults(handler=cmd_connect)

    bootstrap = commands.add_parser(
        "bootstrap",
        help="create the AWS resources `chalice deploy` does not (idempotent)",
        description="Create, idempotently, the lake bucket, Glue database and tables, Athena "
        "workgroup and secret entries for a stage.",
    )
    bootstrap.add_argument("--stage", required=True, help="a stage of .chalice/config.json")
    bootstrap.add_argument("--with-crawler", action="store_true", help="also a Glue crawler")
    bootstrap.add_argument(
        "--alert-email",
        type=_email,
        metavar="ADDRESS",
        help="also alerts: an SNS topic mailing ADDRESS, alarms on the history poll's errors "
        "and on users not polled in time",
    )
    bootstrap.set_defaults(handler=cmd_bootstrap)

    doctor = commands.add_parser(
        "doctor",
        help="check a real deployment end to end",
        description="Check that secrets are readable, a query runs and the schedules exist.",
    )
    doctor.add_argument("--stage", required=True, help="a stage of .chalice/config.json")
    doctor.set_defaults(handler=cmd_doctor)

    configure = commands.add_parser(
        "configure",
        help="put a stage's bucket, names, region and pandas layer into .chalice/",
        description="Write a deployed stage's resource names into .chalice/config.json and its "
        "policy files, consistently; with --account, tighten the policies' ARNs to that region "
        "and account; set the AWS SDK for pandas layer ARN of the region for the transform.",
    )
    configure.add_argument("--stage", required=True, help="stage name, e.g. dev (new or existing)")
    configure.add_argument("--bucket", required=True, help="the lake's S3 bucket (globally unique)")
    configure.add_argument("--region", required=True, help="AWS region, e.g. eu-west-1")
    configure.add_argument("--account", help="12-digit AWS account id: tightens every ARN")
    configure.add_argument(
        "--alerts",
        action="store_true",
        help="publish the staleness metric that `bootstrap --alert-email` alarms on "
        "(a CloudWatch custom metric: $0.30 a month outside the free tier)",
    )
    configure.set_defaults(handler=cmd_configure)

    invite = commands.add_parser(
        "invite",
        help="print a one-time login link for a new user of a deployed stage",
        description="Create a one-time invite in a deployed stage's lake (with your AWS "
        "credentials) and print its login link: on deployed stages /auth/login refuses anyone "
        "without one. The API URL is --api-url, else the one in .chalice/deployed/<stage>.json. "
        "Exit 2 when the stage or its API URL is unknown, 1 when AWS refuses.",
    )
    invite.add_argument("--stage", required=True, help="a deployed stage of .chalice/config.json")
    invite.add_argument("--api-url", help="the stage's API URL, as `chalice deploy` printed it")
    invite.add_argument(
        "--hours", type=int, default=72, help="how long the link stays valid (1-168, default 72)"
    )
    invite.set_defaults(handler=cmd_invite)

    report = commands.add_parser(
        "report",
        help="write the dashboard as one self-contained HTML file",
        description="Run the dashboard's named queries for a date range (the local DuckDB lake, "
        "or a deployed stage's Athena when LAKE_URI is s3://...) and write the charts as one "
        "HTML file that opens offline in any browser. Exit 2 on bad dates, zone or user.",
    )
    report.add_argument("--html", required=True, metavar="FILE", help="the HTML file to write")
    report.add_argument("--start", required=True, metavar="D", help="first date (UTC), YYYY-MM-DD")
    report.add_argument("--end", required=True, metavar="D", help="last date (UTC), inclusive")
    report.add_argument("--user", metavar="U", help="one user's plays (default: all users)")
    report.add_argument("--tz", default="UTC", metavar="Z", help="IANA zone for times of day")
    report.set_defaults(handler=cmd_report)
    return parser


# --- commands -----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from chalicelib.extract import runner

    config = load_config()
    with local_session(config, at=args.at) as services:
        record = runner.run_extraction(
            services,
            datasets=args.datasets,
            users=args.users,
            run_at=args.at,
            progress=_progress,
        )
    print(format_run(record))
    return EXIT_FAILED if record["status"] == "failed" else EXIT_OK


def cmd_query(args: argparse.Namespace) -> int:
    from chalicelib import queries

    if args.list or not args.name:
        for query in queries.list_queries():
            params = ", ".join(
                p["name"] + ("" if p["required"] else "?") for p in query["parameters"]
            )
            print(f"{query['name']:<20} {query['description']}  [{params}]")
        return EXIT_OK
    params = dict(_key_value(p) for p in args.param)
    config = load_config()
    services = services_module.Services(config)
    try:
        answer = services.query_engine.run(args.name, params)
        # A terminal is not held to API Gateway's 29 s: wait for Athena (the engine's own
        # polling sets the pace), saying so on stderr so stdout stays the answer alone.
        while not queries.is_finished(answer):
            _progress(f"query {answer['execution_id']} is {answer['status']}…")
            answer = services.query_engine.get_execution(answer["execution_id"])
    except (queries.UnknownQuery, queries.QueryParameterError) as error:
        raise UsageError(str(error)) from error
    except queries.QueryFailedError as error:
        raise CommandFailed(str(error)) from error
    print(render(answer["columns"], answer["rows"], args.format), end="")
    return EXIT_OK


def cmd_reprocess(args: argparse.Namespace) -> int:
    from chalicelib.transform import handler as transform

    config = load_config()
    with local_session(config, dispatch=False) as services:
        summary = transform.reprocess(services.storage, progress=_progress)
    print(json.dumps(summary, indent=2, default=str))
    return EXIT_OK


def cmd_import_history(args: argparse.Namespace) -> int:
    from chalicelib.queries.parameters import ID_DESCRIPTION, USER_ID_PATTERN
    from spotify_etl import import_history as importer

    if not USER_ID_PATTERN.fullmatch(args.user):
        raise UsageError(f"--user {args.user[:64]!r} is not a user id ({ID_DESCRIPTION})")
    try:
        collected = importer.collect(args.paths)
    except importer.BadExport as error:
        raise UsageError(f"{error}; nothing was imported") from error
    config = load_config()
    services = services_module.Services(config)
    _note_unconnected(services, args.user)
    now = args.at or importer.now_utc()
    landed = importer.land(services.storage, collected.files, args.user, now)
    if config.is_s3_lake:
        _progress(f"landed {len(landed)} file(s) in {config.lake_uri}; waiting for the transforms")
        importer.await_markers(services.storage, landed, print, wait_seconds=args.wait)
    else:
        importer.transform_here(services.storage, landed, print)
    for item in landed:
        if item.already or item.marker is None:
            print(importer.line(item))
    print(importer.summary(args.user, landed, collected.skipped))
    failed = [i for i in landed if i.marker is not None and i.marker.get("status") != "done"]
    return EXIT_FAILED if failed else EXIT_OK


def _note_unconnected(services: services_module.Services, user_id: str) -> None:
    """An import needs no connected user (a lake fed only by exports works); say so."""
    from chalicelib import users

    try:
        known = {user["user_id"] for user in users.list_users(services)}
    except Exception:  # the secret store may be out of reach of these credentials
        return
    if user_id not in known:
        _progress(
            f"note: {user_id} is not a connected Spotify user; the history is imported anyway "
            "(polls will add new plays once the account is connected)"
        )


def cmd_connect(args: argparse.Namespace) -> int:
    from chalicelib import auth
    from spotify_etl import connect

    config = load_config()
    if not config.has_spotify_app:
        raise UsageError("set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET (see README)")
    try:
        user_id = connect.run_local_connect(services_module.Services(config), port=args.port)
    except (connect.ConnectError, auth.AuthError) as error:
        raise CommandFailed(str(error)) from error
    print(f"connected Spotify user {user_id}")
    return EXIT_OK


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from spotify_etl import bootstrap

    try:
        bootstrap.bootstrap_stage(
            load_config(),
            stage=args.stage,
            with_crawler=args.with_crawler,
            alert_email=args.alert_email,
            out=print,
        )
    except bootstrap.BootstrapError as error:
        raise CommandFailed(str(error)) from error
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from spotify_etl import bootstrap, doctor

    try:
        ok = doctor.check_stage(load_config(), stage=args.stage, out=print)
    except bootstrap.BootstrapError as error:
        raise UsageError(str(error)) from error
    return EXIT_OK if ok else EXIT_FAILED


def cmd_configure(args: argparse.Namespace) -> int:
    from spotify_etl import configure

    try:
        changed = configure.configure(
            args.stage, args.bucket, args.region, args.account, alerts=args.alerts
        )
    except configure.ConfigureError as error:
        raise UsageError(str(error)) from error
    for path in changed:
        print(f"  wrote {path}")
    print(f"{len(changed)} file(s) changed." if changed else "Nothing to change.")
    print(f"Next: AWS_REGION={args.region} spotify-etl bootstrap --stage {args.stage}")
    return EXIT_OK


def cmd_invite(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from spotify_etl import invite

    if not 1 <= args.hours <= 168:
        raise UsageError("--hours must be from 1 to 168")
    try:
        config, api_url = invite.resolve_stage(args.stage, load_config(), args.api_url)
    except invite.InviteUsageError as error:
        raise UsageError(str(error)) from error
    try:
        made = invite.create_stage_invite(config, api_url, hours=args.hours)
    except (BotoCoreError, ClientError) as error:
        raise CommandFailed(f"could not write the invite to {config.lake_uri}: {error}") from None
    expires = datetime.fromtimestamp(made.expires_at, UTC).isoformat(timespec="minutes")
    _progress(f"One-time login link for stage {args.stage}, valid until {expires}:")
    print(made.url)  # stdout holds the link alone, for scripts
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from chalicelib import dashboard, queries

    params = {"start": args.start, "end": args.end, "user": args.user, "tz": args.tz}
    services = services_module.Services(load_config())
    try:
        path = dashboard.write_report(services.query_engine, params, args.html, progress=_progress)
    except queries.QueryParameterError as error:
        raise UsageError(str(error)) from error
    except dashboard.DashboardNotReady as error:
        raise CommandFailed(str(error)) from error
    print(path)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from spotify_etl import demo

    if args.days < 1 or args.days > 7:
        raise UsageError("--days must be between 1 and 7")
    return demo.run_demo(
        lake=args.lake,
        days=args.days,
        out=print,
        progress=_progress,
        quota_lockout=args.quota_lockout,
    )


# --- helpers ------------------------------------------------------------------------------


def _timestamp(text: str) -> datetime:
    moment = try_parse_iso(text)
    if moment is None:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}")
    return moment


def _email(text: str) -> str:
    from spotify_etl import bootstrap

    try:
        bootstrap.check_email(text)
    except bootstrap.BootstrapError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--param takes K=V, got {text!r}")
    return key, value


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
