"""`chalice local --stage local` serves the whole API offline: no AWS, no Spotify credentials
(the bundled sample stands in), a local lake and DuckDB."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

PROJECT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def local_api(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SPOTIPY_", "SPOTIFY_", "AWS_"))
    }
    env["LAKE_URI"] = str(tmp_path / "lake")  # the stage's variables apply unless set here
    chalice = Path(sys.executable).parent / "chalice"
    server = subprocess.Popen(
        [str(chalice), "local", "--stage", "local", "--no-autoreload", "--port", str(port)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):  # up to ~30 s for the server to listen
            try:
                requests.get(f"{base}/queries", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_api_runs_offline_on_the_bundled_sample(local_api: str) -> None:
    queries = requests.get(f"{local_api}/queries", timeout=5)
    assert queries.status_code == 200 and len(queries.json()["queries"]) == 13

    started = requests.post(f"{local_api}/runs", json={"datasets": ["plays"]}, timeout=5)
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    for _ in range(100):
        record = requests.get(f"{local_api}/runs/{run_id}", timeout=5).json()
        if record["status"] != "running":
            break
        time.sleep(0.2)
    assert record["status"] == "succeeded" and record["sample"] is True
    [(user_id, outcome)] = record["results"].items()
    assert outcome["plays"]["counts"]

    users = requests.get(f"{local_api}/users", timeout=5).json()["users"]
    assert [u["user_id"] for u in users] == [user_id]

    answer = requests.get(
        f"{local_api}/queries/listening_clock",
        params={"start": "2020-01-01", "end": "2030-12-31", "tz": "Asia/Kolkata"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert [row["hour"] for row in answer.json()["rows"]] == list(range(24))
    assert sum(row["plays"] for row in answer.json()["rows"]) == 50

    refused = requests.get(f"{local_api}/queries/top_artists", params={"start": "x"}, timeout=5)
    assert refused.status_code == 400 and "Message" in refused.json()
