"""`spotify-etl invite --stage S`: a one-time login link for a new user of a deployed stage.

The same invite `POST /auth/invites` makes (`chalicelib.auth.create_invite`), written straight
into the stage's lake with the caller's own AWS credentials, so an operator needs no SigV4
client. The stage's lake comes from `.chalice/config.json` (as for `bootstrap` and `doctor`);
the link's base is `--api-url`, else the REST API URL Chalice recorded in
`.chalice/deployed/<stage>.json` at deploy time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib import auth
from chalicelib.config import Config
from chalicelib.services import Services
from spotify_etl.bootstrap import PROJECT_DIR, BootstrapError, stage_config

Clients = Callable[[str], Any]


class InviteUsageError(Exception):
    """The stage or its API URL cannot be worked out: nothing was written."""


@dataclass(frozen=True)
class StageInvite:
    url: str
    expires_at: int


def deployed_api_url(stage: str, project_dir: Path | None = None) -> str | None:
    """The REST API URL `chalice deploy` recorded for `stage`, if it did."""
    path = (project_dir or PROJECT_DIR) / ".chalice" / "deployed" / f"{stage}.json"
    try:
        deployed = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for resource in deployed.get("resources", []):
        if resource.get("resource_type") == "rest_api" and resource.get("rest_api_url"):
            return str(resource["rest_api_url"])
    return None


def resolve_stage(
    stage: str, base: Config, api_url: str | None, project_dir: Path | None = None
) -> tuple[Config, str]:
    """The stage's `Config` and its API URL, or `InviteUsageError` saying what is missing.
    Checked before anything touches AWS."""
    try:
        config = stage_config(stage, base, project_dir or PROJECT_DIR)
    except BootstrapError as error:
        raise InviteUsageError(str(error)) from None
    if not auth.invites_required(config):
        raise InviteUsageError(f"stage {stage!r} is local: its /auth/login needs no invite")
    url = api_url or deployed_api_url(stage, project_dir)
    if not url:
        raise InviteUsageError(
            f"no API URL for stage {stage!r}: pass --api-url "
            "https://<api-id>.execute-api.<region>.amazonaws.com/api (what `chalice deploy` "
            f"printed), or deploy from this folder so .chalice/deployed/{stage}.json exists"
        )
    if not url.startswith("https://"):
        raise InviteUsageError(f"--api-url must be an https:// URL, not {url!r}")
    return config, url


def create_stage_invite(
    config: Config,
    api_url: str,
    *,
    hours: int = auth.INVITE_LIFETIME_SECONDS // 3600,
    clients: Clients | None = None,
    clock: Callable[[], float] = time.time,
) -> StageInvite:
    """Write a fresh invite into the stage's lake; return its link and expiry (epoch s)."""
    if clients is None:
        import boto3

        clients = boto3.session.Session(region_name=config.aws_region).client
    services = Services(config, boto_client=clients)
    invite = auth.create_invite(services.storage, now=clock(), lifetime=hours * 3600)
    return StageInvite(auth.invite_url(api_url, invite.token), invite.expires_at)
