"""`chalice package --stage dev --pkg-format terraform`: the wiring as Chalice itself emits it.

CloudFormation output cannot express `@app.on_s3_event`, Terraform output can. Packaging needs a
region but no credentials; it downloads Lambda wheels for spotipy from PyPI. Nothing is deployed.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import load_config
from tests.package_helpers import ROOT, chalice_package

STAGE = "dev"
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][STAGE]
ZIP_BUDGET = 10 * 1024 * 1024  # the deployment zip, compressed
UNZIPPED_BUDGET = 50 * 1024 * 1024
# Heavy libraries that must not ride in every function: the transform gets pandas/pyarrow from its
# layer, duckdb is local-only.
HEAVY = {"pandas", "pyarrow", "numpy", "duckdb"}
LOCAL_ONLY = {"spotify_etl", "spotify_standin", "benchmarks", "examples", "docs"}
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chalice_package(ROOT, STAGE, tmp_path_factory.mktemp("terraform"))


@pytest.fixture(scope="module")
def resources(package: Path) -> dict[str, Any]:
    return json.loads((package / "chalice.tf.json").read_text())["resource"]


def function_of(target: str) -> str:
    """`${aws_lambda_function.transform.arn}` → `transform`."""
    return target.removeprefix("${aws_lambda_function.").removesuffix(".arn}")


def test_functions_are_the_configured_ones(resources: dict[str, Any]) -> None:
    assert set(resources["aws_lambda_function"]) == set(CONFIG["lambda_functions"])
    for name, function in resources["aws_lambda_function"].items():
        # The API handler is named after the app; policies and log groups rely on these names.
        suffix = "" if name == "api_handler" else f"-{name}"
        assert function["function_name"] == f"spotify-etl-{STAGE}{suffix}"
        assert function["environment"]["variables"] == CONFIG["environment_variables"]


def test_schedules(resources: dict[str, Any]) -> None:
    rules = resources["aws_cloudwatch_event_rule"]
    targets = resources["aws_cloudwatch_event_target"]
    schedule = {
        function_of(targets[rule]["arn"]): rules[rule]["schedule_expression"] for rule in rules
    }
    assert schedule == {
        "poll_history": "rate(30 minutes)",
        "daily_snapshot": "cron(0 6 * * ? *)",  # UTC
        "reconcile": "rate(6 hours)",
    }


def test_transform_listens_to_raw_objects_only(resources: dict[str, Any]) -> None:
    bucket = load_config(CONFIG["environment_variables"]).lake_uri.removeprefix("s3://")
    (notification,) = resources["aws_s3_bucket_notification"].values()
    assert notification["bucket"] == bucket
    (trigger,) = notification["lambda_function"]
    assert function_of(trigger["lambda_function_arn"]) == "transform"
    assert trigger["events"] == ["s3:ObjectCreated:*"]
    assert (trigger["filter_prefix"], trigger["filter_suffix"]) == ("raw/", ".json.gz")
    permission = resources["aws_lambda_permission"]["transform-s3event"]
    assert permission["principal"] == "s3.amazonaws.com"


def test_memory_timeouts_and_layers(resources: dict[str, Any]) -> None:
    for name, function in resources["aws_lambda_function"].items():
        settings = CONFIG["lambda_functions"][name]
        assert function["memory_size"] == settings["lambda_memory_size"]
        assert function["timeout"] == settings["lambda_timeout"]
        assert function.get("layers", []) == settings.get("layers", [])
        assert function["runtime"] == f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert resources["aws_lambda_function"]["transform"]["layers"]


def test_each_role_carries_its_policy_file(resources: dict[str, Any]) -> None:
    for name, function in resources["aws_lambda_function"].items():
        role = function["role"].removeprefix("${aws_iam_role.").removesuffix(".arn}")
        policy = json.loads(resources["aws_iam_role_policy"][role]["policy"])
        path = ROOT / ".chalice" / CONFIG["lambda_functions"][name]["iam_policy_file"]
        assert policy == json.loads(path.read_text())


def test_deployment_zip_is_small_and_light(package: Path) -> None:
    path = package / "deployment.zip"
    assert path.stat().st_size < ZIP_BUDGET
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    assert sum(info.file_size for info in infos) < UNZIPPED_BUDGET
    top = {info.filename.split("/")[0] for info in infos}
    assert not HEAVY & top
    assert {"app.py", "chalicelib", "spotipy"} <= top
    assert not {"tests", ".venv", "lake"} & top


def test_deployment_zip_holds_only_lambda_code(package: Path) -> None:
    """The local tooling and the stand-in stay on the laptop."""
    with zipfile.ZipFile(package / "deployment.zip") as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names}
    assert not LOCAL_ONLY & top
    # A checkout that has run Python holds chalicelib's __pycache__, which Chalice packages
    # too: compiled Lambda code, harmless.
    ours = [
        n
        for n in names
        if (n == "app.py" or n.startswith("chalicelib/")) and "/__pycache__/" not in n
    ]
    assert all(n.endswith((".py", ".sql", "/")) or "/dashboard/" in n for n in ours), ours


def test_readme_states_the_measured_zip_size(package: Path) -> None:
    """The README's figure is what `chalice package` makes today, within 10 %."""
    size_mb = (package / "deployment.zip").stat().st_size / 1e6
    stated = re.search(r"deployment zip.*?is about\s+([0-9.]+)\s+MB", README.read_text(), re.S)
    assert stated, "README.md must state 'the deployment zip ... is about N MB'"
    assert abs(float(stated[1]) - size_mb) <= 0.1 * size_mb, f"measured {size_mb:.2f} MB"


def test_every_route_but_the_oauth_pair_requires_iam(package: Path) -> None:
    """Deployed, callers sign with SigV4; only the browser-facing OAuth pair is open (it
    verifies its own signed, expiring state)."""
    swagger = json.loads(json.loads((package / "chalice.tf.json").read_text())["locals"][
        "chalice_api_swagger"
    ])  # fmt: skip
    open_routes = {"/auth/login", "/auth/callback"}
    routes = {
        (path, method): operation.get("security")
        for path, methods in swagger["paths"].items()
        for method, operation in methods.items()
    }
    assert {path for path, _ in routes} >= {
        "/runs", "/runs/{run_id}", "/users", "/users/{user_id}", "/queries",
        "/queries/{name}", "/queries/executions/{execution_id}", *open_routes,
    }  # fmt: skip
    for (path, method), security in routes.items():
        expected = None if path in open_routes else [{"sigv4": []}]
        assert security == expected, f"{method.upper()} {path}"
    assert swagger["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
