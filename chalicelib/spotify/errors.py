"""Why a call to Spotify did not produce an answer the extraction can use."""

from __future__ import annotations

from typing import Any


class SpotifyCallError(Exception):
    """A call that failed for good (after the retries the policy allows).

    `reason` is a short machine-readable word (`rate_limited`, `server_error`, `connection`,
    `token_refused`, `deadline`, `http_error`, and from the request budget of contract §9:
    `cooldown`, `budget`); `retry_after` is the number of seconds Spotify asked us to wait, when
    it said so; `cooldown_until` the end of the app-wide lockout this error started or met.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        cooldown_until: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.cooldown_until = cooldown_until

    @property
    def is_unreadable(self) -> bool:
        """403/404: the resource exists for Spotify but not for this app or user."""
        return self.reason == "http_error" and self.status in (403, 404)

    def as_record(self) -> dict[str, Any]:
        """The error as the run record shows it (never a token: messages carry URLs only)."""
        record: dict[str, Any] = {"reason": self.reason, "message": str(self)}
        if self.status is not None:
            record["status"] = self.status
        if self.retry_after is not None:
            record["retry_after"] = self.retry_after
        if self.cooldown_until is not None:
            record["cooldown_until"] = self.cooldown_until
        return record


class TokenRefused(SpotifyCallError):
    """The accounts service refused the refresh token (revoked, or rotated by someone else)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__("token_refused", message, status=status)
