"""`spotify-etl demo`: the whole pipeline on the sample, and the quota lockout it can play."""

from __future__ import annotations

from pathlib import Path

import duckdb

from spotify_etl.demo import run_demo

DAYS = 2


def plays_in(lake: Path) -> list[tuple[str, str]]:
    """Every (user, played_at) in the lake's `plays` table, in order."""
    files = lake / "curated" / "plays" / "*" / "*.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        rows = con.execute(
            f"SELECT user_id, CAST(played_at AS VARCHAR) FROM read_parquet('{files}') ORDER BY 1, 2"
        ).fetchall()
    return [(str(user), str(at)) for user, at in rows]


def test_a_quota_lockout_costs_polls_but_no_play(tmp_path: Path) -> None:
    said: dict[str, list[str]] = {"calm": [], "locked": []}
    shown: dict[str, list[str]] = {"calm": [], "locked": []}
    for name, lockout in (("calm", False), ("locked", True)):
        code = run_demo(
            lake=str(tmp_path / name),
            days=DAYS,
            out=said[name].append,
            progress=shown[name].append,
            quota_lockout=lockout,
        )
        assert code == 0
    assert not any("partial" in line for line in shown["calm"])
    locked_out = [line for line in shown["locked"] if "partial (cooldown)" in line]
    # 09:00 meets the lockout; 12:00 makes no call; 15:00 (after five hours) polls again.
    assert [line.split()[1] for line in locked_out] == ["09:00", "12:00"]
    assert any(line.startswith("Spotify locks the app out") for line in said["locked"])
    assert plays_in(tmp_path / "locked") == plays_in(tmp_path / "calm")
    assert len(plays_in(tmp_path / "calm")) > 100
    [health] = [line for line in said["locked"] if line.startswith("Health:")]
    assert "cooldown until -" in health  # over by the end of the day


def test_the_demo_imports_the_listeners_download_as_the_truth_says(tmp_path: Path) -> None:
    """The demo's download (`spotify_standin.export`, with a row-by-row truth) lands as §8 says:
    every play once, each API play the download also has paired with it, podcasts apart."""
    from datetime import timedelta

    from spotify_etl.demo import DEMO_START, POLL_HOURS
    from spotify_standin import DEMO_USER, demo_world
    from spotify_standin.export import demo_export

    said: list[str] = []
    assert run_demo(lake=str(tmp_path / "lake"), days=DAYS, out=said.append, progress=print) == 0
    at = DEMO_START + timedelta(days=DAYS - 1, hours=POLL_HOURS[-1])
    truth = demo_export(demo_world(start=DEMO_START), DEMO_USER, at).truth
    files = tmp_path / "lake" / "curated" / "plays" / "*" / "*.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        rows = con.execute(
            f"SELECT played_at, source, item_type FROM read_parquet('{files}') ORDER BY 1"
        ).fetchall()
    source = {played_at: kind for played_at, kind, _ in rows}
    api_seen = {at for at, kind in source.items() if kind in ("api", "both")}
    expected_both = {at for at in truth.matched() if at in api_seen}
    assert expected_both and {at for at, kind in source.items() if kind == "both"} == expected_both
    # Every other play of the download is a row of its own; API plays it lacks stay `api`.
    from_download = [r for r in truth.plays() if r.api_played_at not in expected_both]
    assert sum(kind == "export" for kind in source.values()) == len(from_download)
    assert {item for _, _, item in rows} >= {"track", "episode", "audiobook"}
    [summary] = [line for line in said if line.startswith("Imported ")]
    assert f"{len(expected_both)} matched to API plays" in summary
    assert any(line.startswith("Enrichment at") and "succeeded" in line for line in said)
    assert any(line.lstrip().startswith("== top_shows") for line in said)
