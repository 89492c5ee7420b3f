"""`chalice package --pkg-format terraform` on a project folder: what Chalice itself would deploy.

Packaging needs a region but no credentials; it downloads Lambda wheels for spotipy from PyPI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# pip's words for "could not reach the index": the only failure that skips instead of failing.
OFFLINE_MARKERS = ("NewConnectionError", "Temporary failure in name resolution", "No route to host")


def chalice_package(project: Path, stage: str, out: Path, region: str = "us-east-1") -> Path:
    """Package `stage` of `project` into `out` (Terraform JSON and deployment.zip)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in {"SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET"}
    }
    env["AWS_DEFAULT_REGION"] = region
    chalice = Path(sys.executable).parent / "chalice"
    done = subprocess.run(
        [str(chalice), "package", "--stage", stage, "--pkg-format", "terraform", str(out)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    if done.returncode != 0:
        if any(marker in done.stderr for marker in OFFLINE_MARKERS):
            pytest.skip(f"chalice package could not reach PyPI for Lambda wheels: {done.stderr}")
        pytest.fail(f"chalice package failed:\n{done.stdout}\n{done.stderr}")
    return out


def copy_project(into: Path) -> Path:
    """What a fresh clone holds for Chalice: the app, chalicelib/, .chalice/, requirements."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "app.py", into / "app.py")
    shutil.copy(ROOT / "requirements.txt", into / "requirements.txt")
    ignore = shutil.ignore_patterns("__pycache__", "deployments", "venv")
    shutil.copytree(ROOT / "chalicelib", into / "chalicelib", ignore=ignore)
    shutil.copytree(ROOT / ".chalice", into / ".chalice", ignore=ignore)
    return into
