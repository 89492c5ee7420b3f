"""When each scheduled function runs. `app.py` declares its schedules from here and `doctor`
checks the deployed rules against the same table. Schedules are UTC."""

from __future__ import annotations

from chalice import Cron, Rate

from chalicelib.config import Config


def schedules(config: Config) -> dict[str, Rate | Cron]:
    """Function name -> schedule."""
    return {
        # Only the newest 50 plays exist: poll often enough not to miss any.
        "poll_history": Rate(config.history_poll_minutes, unit=Rate.MINUTES),
        "daily_snapshot": Cron(0, 6, "*", "*", "?", "*"),
        # S3 drops an event after two retries: re-drive what has no marker. Rarely needed, and
        # each run lists 10 prefixes (billed like PUTs): four times a day, not hourly.
        "reconcile": Rate(6, unit=Rate.HOURS),
    }


def expressions(config: Config) -> dict[str, str]:
    """Function name -> the expression EventBridge holds (`rate(30 minutes)`, `cron(...)`)."""
    return {name: schedule.to_string() for name, schedule in schedules(config).items()}
