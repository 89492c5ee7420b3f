"""Configuration defaults (contract §2) and lake keys (contract §3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from chalicelib.config import load_config
from chalicelib.extract.dataset import Settings
from chalicelib.layout import (
    iso,
    marker_key,
    new_run_id,
    parse_iso,
    parse_raw_key,
    quarantine_key,
    raw_key,
)
from chalicelib.tables import TABLES, arrow_schema, glue_columns


def test_defaults_for_a_laptop() -> None:
    config = load_config({})
    assert config.lake_uri == "./lake"
    assert config.query_engine == "duckdb"
    assert config.spotify_api_url == "https://api.spotify.com/v1/"
    assert config.spotify_accounts_url == "https://accounts.spotify.com/"
    assert config.uses_sample


def test_s3_lake_defaults_to_athena_and_credentials_disable_the_sample() -> None:
    config = load_config(
        {
            "LAKE_URI": "s3://bucket/prefix",
            "SPOTIPY_CLIENT_ID": "id",
            "SPOTIPY_CLIENT_SECRET": "secret",
            "SPOTIFY_API_URL": "http://127.0.0.1:9/v1",
        }
    )
    assert config.query_engine == "athena"
    assert config.spotify_api_url == "http://127.0.0.1:9/v1/"
    assert not config.uses_sample
    assert load_config({"LAKE_URI": "s3://b", "QUERY_ENGINE": "duckdb"}).query_engine == "duckdb"


def test_raw_key_uses_the_utc_date_of_run_at() -> None:
    late_evening_in_new_york = datetime(2026, 3, 1, 22, 30, tzinfo=timezone(timedelta(hours=-5)))
    key = raw_key("plays", late_evening_in_new_york, "alice", "20260302T033000Z-abcdef")
    assert key == "raw/plays/date=2026-03-02/user=alice/20260302T033000Z-abcdef.json.gz"
    parsed = parse_raw_key(key)
    assert parsed is not None and parsed.user_id == "alice" and parsed.dataset == "plays"
    assert parse_raw_key("raw/plays/oops.json.gz") is None


def test_odd_user_ids_round_trip_through_keys() -> None:
    key = raw_key("plays", datetime(2026, 1, 1, tzinfo=UTC), "jo/ä b", "r1")
    assert "/user=jo%2F%C3%A4%20b/" in key
    parsed = parse_raw_key(key)
    assert parsed is not None and parsed.user_id == "jo/ä b"


def test_marker_and_quarantine_keys_follow_the_raw_key() -> None:
    key = "raw/plays/date=2026-03-02/user=alice/r1.json.gz"
    assert marker_key(key) == "runs/transformed/plays/date=2026-03-02/user=alice/r1.json.gz.json"
    assert quarantine_key(key).startswith("quarantine/plays/date=2026-03-02/user=alice/r1")


def test_run_ids_sort_by_time_and_timestamps_round_trip() -> None:
    earlier = new_run_id(datetime(2026, 1, 1, 6, tzinfo=UTC))
    later = new_run_id(datetime(2026, 1, 1, 6, 30, tzinfo=UTC))
    assert earlier < later
    moment = datetime(2026, 1, 1, 6, 30, 15, 123000, tzinfo=UTC)
    assert iso(moment) == "2026-01-01T06:30:15.123Z"
    assert parse_iso(iso(moment)) == moment


def test_table_definitions_match_the_contract() -> None:
    assert set(TABLES) == {
        "plays", "history_gaps", "imports", "playlists", "playlist_items", "top_items",
        "saved_tracks", "tracks", "track_artists", "albums", "artists",
    }  # fmt: skip
    assert TABLES["plays"].column_names == [
        "user_id", "played_at", "track_id", "context_type", "context_uri", "source", "item_type",
        "episode_id", "ms_played", "reason_start", "reason_end", "skipped", "shuffle", "offline",
        "incognito", "platform", "conn_country", "track_name", "artist_name", "album_name",
        "episode_name", "show_name",
    ]  # fmt: skip
    assert TABLES["history_gaps"].column_names == ["user_id", "gap_from", "gap_to", "run_id"]
    assert TABLES["imports"].column_names == [
        "user_id", "import_id", "file_name", "format", "rows", "first_ts", "last_ts",
    ]  # fmt: skip
    assert (TABLES["history_gaps"].partition.name, TABLES["imports"].partition.name) == (
        "detected_date", "import_date",
    )  # fmt: skip
    plays = arrow_schema(TABLES["plays"])
    assert str(plays.field("ms_played").type) == "int64"
    assert str(plays.field("played_at").type) == "timestamp[ms, tz=UTC]"
    assert "played_date" not in plays.names  # the partition lives in the path
    assert {"Name": "genres", "Type": "array<string>"} in glue_columns(TABLES["artists"])
    assert {"Name": "duration_ms", "Type": "bigint"} in glue_columns(TABLES["tracks"])


def test_history_poll_interval_is_configurable() -> None:
    assert load_config({}).history_poll_minutes == 30
    assert load_config({"HISTORY_POLL_MINUTES": "15"}).history_poll_minutes == 15


def test_enrichment_budget_and_ttl_are_configurable() -> None:
    settings = Settings.from_config(load_config({"ARTIST_BUDGET": "7", "ARTIST_TTL_DAYS": "3"}))
    assert settings.artist_budget == 7 and settings.artist_ttl == timedelta(days=3)
    assert Settings.from_config(load_config({})).artist_budget == 100


def test_lambda_code_never_imports_local_tooling_or_the_app() -> None:
    """`chalicelib/` is what the functions import: no module there reaches for the CLI, the
    stand-in or `app.py` (app.py itself wires local tooling only when the lake is local)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "chalicelib"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in {"app", "spotify_etl", "spotify_standin"}:
                    offenders.append(f"{path.relative_to(root.parent)}: {name}")
    assert offenders == []
