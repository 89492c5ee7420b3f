"""The bundled offline sample: the loopback Spotify stand-in with its demo world.

Used when no Spotify credentials are configured at all (contract §2): the stand-in is started
in this process and the `Config` is pointed at it, so the very same client code runs against it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.config import Config

SAMPLE_NOTICE = "Using the bundled offline SAMPLE data (no Spotify credentials are set)."


def start_sample(config: Config, start: datetime | None = None) -> tuple[Config, object]:
    """Start the stand-in and return a `Config` pointed at it, with the demo user's token.

    `start` anchors the demo world's timeline (default: yesterday, 00:00 UTC), so a run
    "now" sees a history that has already begun.
    """
    from spotify_standin import StandIn, demo_world

    if start is None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=1)
    standin = StandIn(demo_world(start=start)).start()
    # The stand-in's clock starts at the world's start; a live sample run happens now.
    standin.set_now(datetime.now(UTC))
    user_id = next(iter(standin.world.users))
    sample_config = config.replace(
        spotify_api_url=standin.api_url,
        spotify_accounts_url=standin.accounts_url,
        spotify_client_id=standin.client_id,
        spotify_client_secret=standin.client_secret,
        spotify_refresh_token=standin.refresh_token(user_id),
        sample=True,
    )
    return sample_config, standin
