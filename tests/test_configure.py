"""`spotify-etl configure`: a stage's names, policies and pandas layer, written consistently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string

from chalicelib.config import load_config
from spotify_etl import configure
from spotify_etl.cli import main
from tests.package_helpers import ROOT, chalice_package, copy_project

BUCKET, REGION, ACCOUNT = "anna-spotify-lake", "eu-west-2", "123456789012"
LONDON_LAYER = "arn:aws:lambda:eu-west-2:336392948345:layer:AWSSDKPandas-Python311:33"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "clone")


def chalice_config(project: Path) -> dict[str, Any]:
    return json.loads((project / ".chalice" / "config.json").read_text())


def policy(project: Path, stage: str, role: str) -> dict[str, Any]:
    return json.loads((project / ".chalice" / f"policy-{stage}-{role}.json").read_text())


def resources(policy_doc: dict[str, Any]) -> list[str]:
    return [r for statement in policy_doc["Statement"] for r in statement["Resource"]]


def test_the_committed_stages_are_what_configure_writes(project: Path) -> None:
    """dev and prod in the repo are configure's own output: one source for names."""
    for stage in ("dev", "prod"):
        assert configure.configure(stage, f"spotify-etl-lake-{stage}", "us-east-1",
                                   python="3.11", project_dir=project) == []  # fmt: skip
    assert chalice_config(project) == chalice_config(ROOT)


def test_another_bucket_region_and_account(project: Path) -> None:
    written = configure.configure(
        "dev", BUCKET, REGION, ACCOUNT, python="3.11", project_dir=project
    )
    assert sorted(written) == [
        ".chalice/config.json",
        ".chalice/policy-dev-api.json",
        ".chalice/policy-dev-extract.json",
        ".chalice/policy-dev-transform.json",
    ]
    stage = chalice_config(project)["stages"]["dev"]
    assert stage["environment_variables"]["LAKE_URI"] == f"s3://{BUCKET}"
    for function in ("transform", "reconcile"):
        assert stage["lambda_functions"][function]["layers"] == [LONDON_LAYER]
    for role in ("api", "extract", "transform"):
        doc = policy(project, "dev", role)
        arns = resources(doc)
        assert any(BUCKET in arn for arn in arns)
        assert not any("spotify-etl-lake-dev" in arn for arn in arns)
        # Tightened: every non-S3 ARN names the region and the account ("*" only where the
        # action has no resource level, with a condition instead: the metric namespace).
        for statement in doc["Statement"]:
            for arn in statement["Resource"]:
                if arn == "*":
                    assert statement["Action"] == ["cloudwatch:PutMetricData"], statement
                    assert statement["Condition"], statement
                elif not arn.startswith("arn:aws:s3:::"):
                    assert f":{REGION}:{ACCOUNT}:" in arn, arn
        findings = analyze_policy_string(json.dumps(doc), include_community_auditors=True)
        assert [(f.issue, f.detail) for f in findings.findings] == []
    # prod is untouched, and a second run changes nothing.
    assert chalice_config(project)["stages"]["prod"] == chalice_config(ROOT)["stages"]["prod"]
    assert (
        configure.configure("dev", BUCKET, REGION, ACCOUNT, python="3.11", project_dir=project)
        == []
    )


def test_a_new_stage_and_kept_variables(project: Path) -> None:
    path = project / ".chalice" / "config.json"
    config = chalice_config(project)
    config["stages"]["dev"]["environment_variables"]["SPOTIPY_REDIRECT_URI"] = "https://x/cb"
    path.write_text(json.dumps(config))
    configure.configure("dev", BUCKET, REGION, python="3.11", project_dir=project)
    dev = chalice_config(project)["stages"]["dev"]["environment_variables"]
    assert dev["SPOTIPY_REDIRECT_URI"] == "https://x/cb"
    # No account: ARNs stay open on region and account, as in the repo.
    assert all(":*:*:" in a for a in resources(policy(project, "dev", "api")) if "s3" not in a)

    configure.configure("staging", "anna-lake-staging", "eu-central-1", project_dir=project)
    staging = chalice_config(project)["stages"]["staging"]
    assert staging["environment_variables"]["GLUE_DATABASE"] == "spotify_etl_staging"
    assert staging["lambda_functions"]["extract"]["iam_policy_file"] == (
        "policy-staging-extract.json"
    )
    assert (project / ".chalice" / "policy-staging-transform.json").exists()


def test_alerts_turn_the_staleness_metric_on_and_it_stays_on(project: Path) -> None:
    def variables() -> dict[str, str]:
        return chalice_config(project)["stages"]["dev"]["environment_variables"]

    configure.configure("dev", BUCKET, REGION, python="3.11", project_dir=project)
    assert "FRESHNESS_METRIC" not in variables()
    configure.configure("dev", BUCKET, REGION, alerts=True, python="3.11", project_dir=project)
    assert variables()["FRESHNESS_METRIC"] == "on"
    assert load_config(variables()).freshness_metric
    configure.configure("dev", BUCKET, REGION, python="3.11", project_dir=project)
    assert variables()["FRESHNESS_METRIC"] == "on"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--stage", "dev", "--bucket", "My_Bucket", "--region", REGION], "--bucket"),
        (["--stage", "local", "--bucket", BUCKET, "--region", REGION], "--stage"),
        (["--stage", "dev", "--bucket", BUCKET, "--region", "mars-1"], "--region"),
        (["--stage", "dev", "--bucket", BUCKET, "--region", REGION, "--account", "1"], "--account"),
        (["--stage", "dev", "--bucket", BUCKET, "--region", "xx-nowhere-9"], "layers.html"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_written(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    project: Path,
) -> None:  # fmt: skip
    monkeypatch.setattr(configure, "PROJECT_DIR", project)
    before = {p.name: p.read_text() for p in (project / ".chalice").iterdir() if p.is_file()}
    assert main(["configure", *args]) == 2
    assert says in capsys.readouterr().err
    after = {p.name: p.read_text() for p in (project / ".chalice").iterdir() if p.is_file()}
    assert after == before


def test_every_supported_region_has_a_311_layer_in_its_own_region() -> None:
    table = json.loads(configure.LAYERS_FILE.read_text())
    assert "aws-sdk-pandas" in table["source"]
    for region, versions in table["layers"].items():
        arn = versions["3.11"]["x86_64"]
        partition = "aws-cn" if region.startswith("cn-") else "aws"
        assert arn.startswith(f"arn:{partition}:lambda:{region}:") and "Python311:" in arn


def test_configure_then_package_for_another_region(project: Path, tmp_path: Path) -> None:
    """What a new user does: configure, then Chalice packages that region's layer and names."""
    configure.configure("dev", BUCKET, REGION, ACCOUNT, python="3.11", project_dir=project)
    out = chalice_package(project, "dev", tmp_path / "tf", region=REGION)
    terraform = json.loads((out / "chalice.tf.json").read_text())
    functions = terraform["resource"]["aws_lambda_function"]
    assert functions["transform"]["layers"] == [LONDON_LAYER]
    assert functions["reconcile"]["layers"] == [LONDON_LAYER]
    for name, function in functions.items():
        variables = function["environment"]["variables"]
        assert variables["LAKE_URI"] == f"s3://{BUCKET}", name
        assert variables["EXTRACT_FUNCTION"] == "spotify-etl-dev-extract", name
    [notification] = terraform["resource"]["aws_s3_bucket_notification"].values()
    assert notification["bucket"] == BUCKET
    policies = json.dumps(terraform["resource"]["aws_iam_role_policy"])
    assert BUCKET in policies and "spotify-etl-lake-dev" not in policies
    assert f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/spotify-etl-dev" in policies
