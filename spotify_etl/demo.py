"""`spotify-etl demo`: the whole pipeline on the bundled sample, then a few answers.

A few simulated days: the history poll every three hours and the daily snapshot at 06:00 UTC,
exactly as the schedules would run them, each with `run_at` set to the simulated moment. Every
raw object is transformed as it lands (the local lake dispatches the app's own S3 event), and the
answers come from the named queries over the resulting lake.

With `--quota-lockout`, Spotify locks the app out (429 `QUOTA_EXCEEDED`, contract §9) at 09:00 on
the last day for five hours: the polls in between make no call and end `partial` (`cooldown`),
the first poll after it catches up, and no play is lost (fewer than 50 were played meanwhile).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib import services as services_module
from chalicelib.config import load_config
from spotify_standin.demo import OLDER_HISTORY_DAYS

# A fixed timeline makes the demo's answers the same on every machine.
DEMO_START = datetime(2026, 11, 16, tzinfo=UTC)
POLL_HOURS = (0, 3, 6, 9, 12, 15, 18, 21)
SNAPSHOT_HOUR = 6
LOCKOUT_HOUR, LOCKOUT = 9, timedelta(hours=5)
LAKE_MARKER = ".spotify-etl-demo"
# The first day of the listener's data download.
HISTORY_START = DEMO_START - timedelta(days=OLDER_HISTORY_DAYS)

Out = Callable[[str], None]


def run_demo(*, lake: str, days: int, out: Out, progress: Out, quota_lockout: bool = False) -> int:
    """Run the demo into `lake` (recreated) and print answers. Returns the exit code."""
    from chalicelib import datasets
    from chalicelib.extract import runner
    from spotify_etl.local import dispatching
    from spotify_etl.sample import SAMPLE_NOTICE, start_sample

    lake_dir = _fresh_lake(Path(lake))
    base = load_config().replace(
        lake_uri=str(lake_dir),
        query_engine="duckdb",
        stage="local",
        spotify_client_id=None,
        spotify_client_secret=None,
        spotify_refresh_token=None,
    )
    config, standin = start_sample(base, start=DEMO_START)
    services = dispatching(config)
    services_module.use(services)
    out(SAMPLE_NOTICE)
    out(f"Lake: {lake_dir}")
    try:
        statuses: dict[str, int] = {}
        for day in range(days):
            for hour in POLL_HOURS:
                at = DEMO_START + timedelta(days=day, hours=hour)
                standin.set_now(at)
                if quota_lockout and day == days - 1 and hour == LOCKOUT_HOUR:
                    standin.lock_out(LOCKOUT)
                    out(f"Spotify locks the app out at {at:%Y-%m-%d %H:%M} UTC for {LOCKOUT}")
                chosen = list(datasets.scheduled(datasets.HISTORY))
                if hour == SNAPSHOT_HOUR:
                    chosen += datasets.scheduled(datasets.DAILY)
                record = runner.run_extraction(services, datasets=chosen, run_at=at)
                statuses[record["status"]] = statuses.get(record["status"], 0) + 1
                progress(f"  {at:%Y-%m-%d %H:%M} UTC  {'+'.join(chosen):<45} {_said(record)}")
        out(f"Runs: {statuses}")
        out(_health_line(services, at))
        _import_export(services, standin, lake_dir, at, out, progress)
        _print_answers(services, days, out)
        out(f"\nDashboard: {_write_dashboard(services, days, lake_dir)}")
    finally:
        services_module.use(None)
        standin.stop()
    return 0 if "failed" not in statuses else 1


def _import_export(
    services: services_module.Services,
    standin: Any,
    lake_dir: Path,
    at: datetime,
    out: Out,
    progress: Out,
) -> None:
    """The listener's data download, as Spotify would send it at the end of the demo, imported
    as `spotify-etl import-history` does: months of history the API never showed."""
    from chalicelib.extract import runner
    from spotify_etl import import_history as importer
    from spotify_standin.export import demo_export_zip

    user = _demo_user(services)
    path = lake_dir / "my_spotify_data.zip"
    path.write_bytes(demo_export_zip(standin.world, user, at))
    out(f"\nImporting {path.name} (the listener's data download) for {user}:")
    collected = importer.collect([path])
    # The demo's lake dispatches each write's S3 event: every file is transformed as it lands,
    # and its marker says what became of its rows.
    landed = importer.land(services.storage, collected.files, user, at)
    importer.await_markers(services.storage, landed, progress, wait_seconds=0)
    out(importer.summary(user, landed, collected.skipped))
    # The next daily enrichment looks up the tracks only the download knows, then their artists.
    enrich_at = at + timedelta(hours=1)
    standin.set_now(enrich_at)
    record = runner.run_extraction(services, datasets=["tracks", "artists"], run_at=enrich_at)
    calls = record.get("calls", 0)
    out(f"Enrichment at {enrich_at:%Y-%m-%d %H:%M} UTC: {_said(record)}, {calls} Spotify calls")


def _said(record: dict[str, Any]) -> str:
    """A run's status, with why it was partial."""
    reasons = sorted(
        {
            error["reason"]
            for per_user in record["results"].values()
            for outcome in per_user.values()
            for error in outcome.get("errors", [])
        }
        | {error["reason"] for error in record["errors"]}
    )
    return record["status"] + (f" ({', '.join(reasons)})" if reasons else "")


def _health_line(services: services_module.Services, now: datetime) -> str:
    """`GET /health`'s answer at the end, in one line."""
    from chalicelib import health

    report = health.report(services, now)
    stale = [user["user_id"] for user in report["users"] if user["stale"]]
    return (
        f"Health: {report['calls_today']} of {report['daily_budget']} Spotify calls today, "
        f"cooldown until {report['cooldown_until'] or '-'}, stale users: {stale or 'none'}"
    )


def _print_answers(services: services_module.Services, days: int, out: Out) -> None:
    from spotify_etl.report import render

    engine = services.query_engine
    first = (DEMO_START - timedelta(days=2)).date().isoformat()
    last = (DEMO_START + timedelta(days=days - 1)).date().isoformat()
    snapshot_day = (DEMO_START + timedelta(days=days - 1)).date().isoformat()
    user = _demo_user(services)
    # The imported download reaches months further back than the polls.
    since = HISTORY_START.date().isoformat()
    asks: list[tuple[str, dict[str, str]]] = [
        ("coverage", {"start": first, "end": last}),
        ("daily_listening", {"start": first, "end": last}),
        ("top_artists", {"start": since, "end": last, "limit": "5"}),
        ("top_tracks", {"start": since, "end": last, "limit": "5"}),
        ("genres", {"start": since, "end": last, "limit": "5"}),
        ("top_shows", {"start": since, "end": last, "limit": "5"}),
        ("skips", {"start": since, "end": last, "limit": "5"}),
        ("listening_clock", {"start": first, "end": last, "tz": "Europe/Berlin"}),
        ("top_items_movement", {
            "item_type": "artist", "time_range": "short_term", "date": snapshot_day, "user": user,
        }),
    ]  # fmt: skip
    changed = _changed_playlist(services)
    if changed is not None:
        playlist, day = changed
        asks.append(("playlist_changes", {"playlist": playlist, "date": day, "user": user}))
    for name, params in asks:
        answer: dict[str, Any] = engine.run(name, params)
        shown = " ".join(f"{k}={v}" for k, v in params.items())
        out(f"\n== {name} ({shown}) — sample data")
        out(render(answer["columns"], answer["rows"], "table").rstrip())


def _write_dashboard(services: services_module.Services, days: int, lake_dir: Path) -> Path:
    """The demo's dashboard (`spotify-etl report --html`) over the answers' range, in the lake."""
    from chalicelib import dashboard
    from spotify_etl.sample import SAMPLE_NOTICE

    params = {
        "start": HISTORY_START.date().isoformat(),
        "end": (DEMO_START + timedelta(days=days - 1)).date().isoformat(),
        "tz": "Europe/Berlin",
    }
    path = lake_dir / "dashboard.html"
    return dashboard.write_report(services.query_engine, params, path, notice=SAMPLE_NOTICE)


def _demo_user(services: services_module.Services) -> str:
    from chalicelib import users

    return str(users.list_users(services)[0]["user_id"])


def _changed_playlist(services: services_module.Services) -> tuple[str, str] | None:
    """A playlist whose snapshot changed during the demo, and the day it changed."""
    import duckdb

    files = Path(services.config.lake_uri) / "curated" / "playlists" / "*" / "*.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        row = con.execute(
            f"""
            SELECT playlist_id, CAST(max(snapshot_date) AS VARCHAR)
            FROM read_parquet('{files}', hive_partitioning = true)
            WHERE items_readable
            GROUP BY playlist_id
            HAVING count(DISTINCT snapshot_id) > 1
            ORDER BY playlist_id
            LIMIT 1
            """
        ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def _fresh_lake(lake_dir: Path) -> Path:
    """Recreate the demo's own lake; refuse to wipe a directory the demo did not make."""
    lake_dir = lake_dir.resolve()
    if lake_dir.exists() and any(lake_dir.iterdir()):
        if not (lake_dir / LAKE_MARKER).exists():
            raise SystemExit(f"{lake_dir} exists and is not a demo lake; pick another --lake")
        shutil.rmtree(lake_dir)
    lake_dir.mkdir(parents=True, exist_ok=True)
    (lake_dir / LAKE_MARKER).write_text("created by `spotify-etl demo`; safe to delete\n")
    return lake_dir
