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
