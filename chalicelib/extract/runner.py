"""Extraction runs: for each connected user and dataset, fetch, land one raw object, then move
state forward — and keep the run record up to date as it goes.

The schedules, `POST /runs` (through the `extract` function) and the CLI all call
`run_extraction`. A run never waits past its deadline: a dataset that cannot finish in time
(429 with a long Retry-After, 5xx after retries, a refused token) stops with its reason, the
others go on, and the run ends `partial`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib import datasets as registry
from chalicelib import layout, metrics, runs
from chalicelib import users as users_module
from chalicelib.datasets import Dataset
from chalicelib.extract.dataset import Fetch, Fetched, Settings, Stopped
from chalicelib.extract.envelope import build_envelope, write_envelope
from chalicelib.quota import Quota
from chalicelib.spotify.errors import SpotifyCallError
from chalicelib.storage import retry_transient

if TYPE_CHECKING:
    from chalicelib.secrets import SecretStore
    from chalicelib.services import Services
    from chalicelib.spotify.client import AppCredentials, RetryPolicy, SpotifyClient
    from chalicelib.users import ConnectedUser

log = logging.getLogger(__name__)

DEFAULT_RUN_SECONDS = 14 * 60.0  # a run with no deadline given (CLI) still ends
DEADLINE_MARGIN_SECONDS = 30.0  # kept free before a Lambda's end to write the run record
# Progress is for a person watching a long run; a half-hourly poll that ends within seconds
# writes its record twice (start, finish), not once more per dataset: each write is a billed PUT.
PROGRESS_SECONDS = 5.0

Progress = Callable[[str], None]  # one line per finished dataset, for a person at a terminal


def run_scheduled(services: Services, group: str, context: Any) -> dict[str, Any]:
    """A schedule's run: every connected user, the group's datasets (`datasets.HISTORY`,
    `datasets.DAILY`), now; bounded by the Lambda's time."""
    chosen = registry.scheduled(group)
    record = run_extraction(services, datasets=chosen, deadline=deadline_from(context))
    if group == registry.HISTORY:  # the staleness alarm watches what each poll publishes
        metrics.publish_freshness(services)
    return record


def run_requested(services: Services, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The `extract` function: `{"run_id"?, "datasets"?, "users"?, "run_at"?}` from POST /runs."""
    run_at = event.get("run_at")
    return run_extraction(
        services,
        datasets=event.get("datasets"),
        users=event.get("users"),
        run_at=layout.parse_iso(run_at) if run_at else None,
        run_id=event.get("run_id"),
        deadline=deadline_from(context),
    )


def deadline_from(context: Any) -> float | None:
    """A monotonic deadline from a Lambda context, leaving a margin to finish the record."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return None
    remaining = remaining_ms() / 1000.0
    return time.monotonic() + remaining - min(DEADLINE_MARGIN_SECONDS, remaining * 0.1)


def run_extraction(
    services: Services,
    *,
    datasets: Iterable[str] | None = None,
    users: Iterable[str] | None = None,
    run_at: datetime | None = None,
    run_id: str | None = None,
    deadline: float | None = None,
    progress: Progress | None = None,
    settings: Settings | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """One extraction run; returns the finished run record.

    A `run_id` whose record exists already is a retried request: its record is returned and
    nothing runs again. `deadline` is a `time.monotonic()` value.
    """
    chosen = registry.validate(None if datasets is None else tuple(datasets))
    run_at = layout.utc(run_at or datetime.now(UTC))
    run_id = run_id or layout.new_run_id(run_at)
    deadline = deadline if deadline is not None else time.monotonic() + DEFAULT_RUN_SECONDS
    storage = services.storage
    record = {
        "run_id": run_id,
        "status": "running",
        "run_at": layout.iso(run_at),
        "started_at": layout.iso(datetime.now(UTC)),
        "finished_at": None,
        "deadline": layout.iso(datetime.now(UTC) + timedelta(seconds=deadline - time.monotonic())),
        "datasets": list(chosen),
        "users": sorted(users) if users is not None else None,
        "sample": services.config.sample,
        "results": {},
        "errors": [],
    }
    if not runs.create_run(storage, record):
        log.info("run %s exists already: not running it twice", run_id)
        return runs.get_run(storage, run_id) or record
    run = _Run(
        services,
        record,
        deadline,
        settings or Settings.from_config(services.config),
        policy,
        sleep,
        progress,
    )
    try:
        run.execute(chosen, users)
    except Exception as error:  # the record must not stay `running` for whatever went wrong
        log.exception("run %s failed", run_id)
        run.errors.append({"reason": "internal_error", "message": f"{type(error).__name__}"})
    return run.finish()


class _Run:
    """The moving parts of one run (kept together so `run_extraction` reads as its steps)."""

    def __init__(
        self,
        services: Services,
        record: dict[str, Any],
        deadline: float,
        settings: Settings,
        policy: RetryPolicy | None,
        sleep: Callable[[float], None],
        progress: Progress | None,
    ) -> None:
        self.services = services
        self.storage = services.storage
        self.run_id = record["run_id"]
        self.run_at = layout.parse_iso(record["run_at"])
        self.deadline = deadline
        self.settings = settings
        self.policy = policy
        self.sleep = sleep
        self.progress = progress
        self.results: dict[str, dict[str, dict[str, Any]]] = {}
        self.errors: list[dict[str, Any]] = []
        self.recorded_at = time.monotonic()  # when the record in the lake was last written
        config = services.config
        self.quota = Quota(
            self.storage,
            self.run_id,
            self.run_at,
            daily_budget=config.spotify_daily_budget,
            poll_minutes=config.history_poll_minutes,
        )

    def execute(self, datasets: tuple[str, ...], wanted: Iterable[str] | None) -> None:
        store = self.services.secrets
        credentials = users_module.app_credentials(self.services, store)
        if credentials is None:
            self.errors.append({"reason": "no_spotify_app", "message": "no client id/secret"})
            return
        everyone, env_error = self._connected_users(store, credentials)
        if env_error is not None:
            self.errors.append({**env_error.as_record(), "user_id": "SPOTIFY_REFRESH_TOKEN"})
        selected = _select(everyone, wanted, self.errors)
        if not selected:
            if env_error is None or env_error.reason not in runs.WAITING_REASONS:
                self.errors.append(
                    {"reason": "no_users", "message": "no connected user to run for"}
                )
            return
        self.quota.users = max(1, len(everyone))
        clients = {u.user_id: self._client(u, credentials) for u in selected}
        chosen = [registry.REGISTRY[name] for name in datasets]
        # By priority, then users: every user's plays before anyone's daily datasets, and
        # enrichment last, so a short budget or a lockout costs what can wait (contract §9).
        for priority in sorted({dataset.priority for dataset in chosen}):
            level = [dataset for dataset in chosen if dataset.priority == priority]
            for user in selected:
                per_user = [dataset for dataset in level if dataset.per_user]
                self._user_datasets(user.user_id, clients[user.user_id], per_user)
            for dataset in level:
                if not dataset.per_user:
                    self._once_per_run(clients, dataset)
        if self.quota.locked_until is not None:
            until = layout.iso(self.quota.locked_until)
            self.errors.append(
                {
                    "reason": "cooldown",
                    "message": f"Spotify locked the app out until {until}",
                    "cooldown_until": until,
                }
            )

    def _connected_users(
        self, store: SecretStore, credentials: AppCredentials
    ) -> tuple[list[ConnectedUser], SpotifyCallError | None]:
        """Everyone to run for, and why the `SPOTIFY_REFRESH_TOKEN` user is missing, if it is.

        Learning that user's id (`GET /me`) is a call like any other: within the budget,
        counted, and not made at all in a cooldown. When it cannot be made or fails, the stored
        users still run (or wait, likewise)."""
        gate = self.quota.gate(registry.PLAYS_FIRST)
        if isinstance(gate, SpotifyCallError):
            everyone = users_module.connected_users(self.services, store, None)
            unknown = self.services.config.spotify_refresh_token and not _env_user_known(everyone)
            return everyone, gate if unknown else None
        try:
            learnt = users_module.connected_users(
                self.services, store, credentials, self.policy, gate
            )
            return learnt, None
        except SpotifyCallError as error:
            failure = error
        except Exception as error:
            log.exception("run %s: the SPOTIFY_REFRESH_TOKEN user not learnt", self.run_id)
            failure = SpotifyCallError("dataset_error", _describe(error))
        return users_module.connected_users(self.services, store, None), failure

    def _user_datasets(self, user_id: str, client: SpotifyClient, datasets: list[Dataset]) -> None:
        for dataset in datasets:
            refused = self._token_refused(user_id)
            if refused is not None:
                self._record(user_id, dataset.name, refused)
                continue
            outcome = self._dataset(user_id, client, dataset)
            if dataset.name == "plays" and outcome["status"] == "succeeded":
                self._keep_books(
                    "last poll",
                    lambda u=user_id: users_module.record_poll(self.storage, u, self.run_at),
                    outcome,
                )

    def _once_per_run(self, clients: dict[str, SpotifyClient], dataset: Dataset) -> None:
        """Enrichment is once per run, with the first user whose token works."""
        for user_id, client in clients.items():
            if self._token_refused(user_id):
                continue
            outcome = self._dataset(user_id, client, dataset)
            if not _refused(outcome):
                return

    def _token_refused(self, user_id: str) -> dict[str, Any] | None:
        """A user whose token was refused in this run is not asked again: each dataset left
        gets the same reason, without a call."""
        for outcome in self.results.get(user_id, {}).values():
            if _refused(outcome):
                return {**outcome, "raw_objects": [], "calls": {}, "counts": {}, "warnings": []}
        return None

    def _dataset(self, user_id: str, client: SpotifyClient, dataset: Dataset) -> dict[str, Any]:
        """One dataset of one user, contained: whatever goes wrong in it (Spotify, a poison
        answer, a bug) ends this dataset only, and what was received still lands."""
        try:
            gate = retry_transient(lambda: self.quota.gate(dataset.priority), what="quota")
        except Exception as failed:  # neither budget nor cooldown known: Spotify is not asked
            log.exception("run %s: quota state not readable", self.run_id)
            gate = SpotifyCallError("dataset_error", f"quota not readable: {_describe(failed)}")
        if isinstance(gate, SpotifyCallError):  # skipped: cooldown, budget; no call made
            outcome = _skipped(gate)
            self._record(user_id, dataset.name, outcome)
            return outcome
        client.gate = gate
        try:
            outcome = self._land(user_id, client, dataset.name, dataset.fetch)
        except Exception as error:
            log.exception("run %s: %s of %s failed", self.run_id, dataset.name, user_id)
            outcome = self._contained(user_id, client, dataset.name, error)
        finally:
            client.gate = None
        self._keep_books(
            "quota ledger", lambda: self.quota.spent(sum(outcome["calls"].values())), outcome
        )
        self._record(user_id, dataset.name, outcome)
        return outcome

    def _keep_books(self, what: str, write: Callable[[], None], outcome: dict[str, Any]) -> None:
        """A bookkeeping write after a dataset (ledger, progress, last poll): retried while S3
        says "try again", and should it still fail, a warning on that dataset — never an error
        that stops the run for the users and datasets still to come."""
        try:
            retry_transient(write, what=what)
        except Exception as failed:
            log.exception("run %s: %s not written", self.run_id, what)
            warning = {"type": "not_recorded", "what": what, "error": _describe(failed)}
            outcome["warnings"].append(warning)

    def _contained(
        self, user_id: str, client: SpotifyClient, dataset: str, error: Exception
    ) -> dict[str, Any]:
        """The outcome of a dataset that raised something unexpected: `failed`, with the
        answers received so far landed as an incomplete raw object when that still works."""
        responses, calls = client.take_record()
        record = {"reason": "dataset_error", "message": _describe(error)}
        raw_objects: list[str] = []
        if responses:
            raw_key = layout.raw_key(dataset, self.run_at, user_id, self.run_id)
            try:
                self._write(user_id, dataset, raw_key, responses, {}, complete=False)
                raw_objects = [raw_key]
            except Exception as failed:
                log.exception("run %s: raw object %s not written", self.run_id, raw_key)
                record["message"] += f"; raw object not written: {_describe(failed)}"
        return _outcome("failed", errors=[record], raw_objects=raw_objects, calls=calls)

    def _write(
        self,
        user_id: str,
        dataset: str,
        raw_key: str,
        responses: list[dict[str, Any]],
        extras: dict[str, Any],
        *,
        complete: bool,
    ) -> None:
        envelope = build_envelope(
            user_id=user_id,
            dataset=dataset,
            run_id=self.run_id,
            run_at=self.run_at,
            fetched_at=datetime.now(UTC),
            responses=responses,
            # `complete`: the dataset finished (the transform takes snapshots only from
            # complete runs); `api_url`: where the answers' paths start.
            extras={
                **extras,
                "complete": complete,
                "api_url": self.services.config.spotify_api_url,
            },
        )
        write_envelope(self.storage, raw_key, envelope)

    def _land(
        self,
        user_id: str,
        client: SpotifyClient,
        dataset: str,
        fetch: Callable[[Fetch], Fetched],
    ) -> dict[str, Any]:
        raw_key = layout.raw_key(dataset, self.run_at, user_id, self.run_id)
        job = Fetch(client, self.storage, user_id, self.run_id, self.run_at, raw_key, self.settings)
        error: SpotifyCallError | None = None
        try:
            fetched = fetch(job)
        except Stopped as stopped:
            fetched, error = stopped.partial, stopped.error
        except SpotifyCallError as failed:
            fetched, error = Fetched(), failed
        except Exception as failed:
            log.exception("run %s: %s of %s failed", self.run_id, dataset, user_id)
            fetched = Fetched()
            error = SpotifyCallError("dataset_error", _describe(failed))
        responses, calls = client.take_record()
        if responses:
            try:
                self._write(
                    user_id, dataset, raw_key, responses, fetched.extras, complete=error is None
                )
            except Exception as failed:
                log.exception("run %s: raw object %s not written", self.run_id, raw_key)
                message = f"raw object not written: {_describe(failed)}"
                return _outcome(
                    "failed",
                    errors=[{"reason": "dataset_error", "message": message}],
                    counts=fetched.counts,
                    warnings=fetched.warnings,
                    calls=calls,
                )
        if fetched.advance is not None and (error is None or error.reason != "dataset_error"):
            # Only now: the raw object that justifies the new state exists. Should saving the
            # state fail, the answers are landed all the same (the next run covers them again).
            try:
                retry_transient(fetched.advance, what=f"{dataset} state of {user_id}")
            except Exception as failed:
                log.exception("run %s: %s state of %s not saved", self.run_id, dataset, user_id)
                error = SpotifyCallError("dataset_error", f"state not saved: {_describe(failed)}")
        return _outcome(
            _status(error, responses),
            errors=[] if error is None else [self._error_record(error)],
            counts=fetched.counts,
            raw_objects=[raw_key] if responses else [],
            warnings=fetched.warnings,
            calls=calls,
        )

    def _record(self, user_id: str, dataset: str, outcome: dict[str, Any]) -> None:
        """Keep the outcome; in the lake too once the run has lasted a while, so that
        `GET /runs/{id}` shows a long run's progress."""
        self.results.setdefault(user_id, {})[dataset] = outcome
        if time.monotonic() - self.recorded_at >= PROGRESS_SECONDS:
            self._keep_books(
                "run progress",
                lambda: runs.update_run(
                    self.storage, self.run_id, lambda r: r.update(results=self.results)
                ),
                outcome,
            )
            self.recorded_at = time.monotonic()
        if self.progress is not None:
            self.progress(describe_outcome(user_id, dataset, outcome))

    def _error_record(self, error: SpotifyCallError) -> dict[str, Any]:
        record = error.as_record()
        if error.retry_after is not None:  # on the run's clock, as a cooldown's end (§9)
            retry_at = layout.utc(self.run_at) + timedelta(seconds=error.retry_after)
            record["retry_at"] = layout.iso(retry_at)
        return record

    def _client(self, user: ConnectedUser, credentials: Any) -> SpotifyClient:
        from chalicelib.spotify.client import SpotifyClient, oauth_manager, token_refresher
        from chalicelib.spotify.tokens import UserAuth

        config = self.services.config
        refresher = token_refresher(oauth_manager(config, credentials))
        auth = UserAuth(self.storage, user.user_id, user.source, refresher)
        return SpotifyClient(
            config, auth, policy=self.policy, deadline=self.deadline, sleep=self.sleep
        )

    def finish(self) -> dict[str, Any]:
        status = runs.overall_status(self.results, self.errors)

        def close(record: dict[str, Any]) -> None:
            record.update(
                status=status,
                results=self.results,
                errors=self.errors,
                finished_at=layout.iso(datetime.now(UTC)),
                calls=self.quota.calls,  # Web API calls this run made, all datasets together
                quota=self.quota.summary(),
            )

        return runs.update_run(self.storage, self.run_id, close)


def _env_user_known(users: list[ConnectedUser]) -> bool:
    return any(user.kind == "env" for user in users)


def _select(
    everyone: list[ConnectedUser], wanted: Iterable[str] | None, errors: list[dict[str, Any]]
) -> list[ConnectedUser]:
    if wanted is None:
        return everyone
    wanted = list(wanted)
    known = {u.user_id for u in everyone}
    for user_id in wanted:
        if user_id not in known:
            errors.append({"reason": "unknown_user", "user_id": user_id})
    return [u for u in everyone if u.user_id in wanted]


def describe_outcome(user_id: str, dataset: str, outcome: dict[str, Any]) -> str:
    """`demo_listener plays: succeeded (plays=50; 1 call)` — or the reason it stopped."""
    counts = ", ".join(f"{k}={v}" for k, v in outcome["counts"].items())
    calls = sum(outcome["calls"].values())
    line = f"{user_id} {dataset}: {outcome['status']} ({counts}{'; ' if counts else ''}"
    line += f"{calls} call{'' if calls == 1 else 's'})"
    for error in outcome["errors"]:
        line += f" - {error['reason']}"
        if error.get("retry_at"):
            line += f", retry after {error['retry_at']}"
    for warning in outcome["warnings"]:
        line += f" - warning {warning['type']}"
    return line


def _refused(outcome: dict[str, Any]) -> bool:
    return any(e.get("reason") == "token_refused" for e in outcome["errors"])


def _skipped(error: SpotifyCallError) -> dict[str, Any]:
    """A dataset not started for the budget or a cooldown (`partial`), or because the quota's
    state could not be read (`failed`): zero calls."""
    status = "partial" if error.reason in runs.WAITING_REASONS else "failed"
    return _outcome(status, errors=[error.as_record()])


def _outcome(
    status: str,
    *,
    errors: list[dict[str, Any]],
    counts: dict[str, int] | None = None,
    raw_objects: list[str] | None = None,
    warnings: list[dict[str, Any]] | None = None,
    calls: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One dataset's outcome as the run record keeps it (`GET /runs/{id}`)."""
    return {
        "status": status,
        "counts": counts or {},
        "raw_objects": raw_objects or [],
        "errors": errors,
        "warnings": warnings if warnings is not None else [],
        "calls": calls or {},
    }


def _describe(error: Exception) -> str:
    """`ValueError: …`, kept short: a run record is not a traceback."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def _status(error: SpotifyCallError | None, responses: list[dict[str, Any]]) -> str:
    if error is None:
        return "succeeded"
    if error.reason == "dataset_error":
        return "failed"
    if error.reason in ("budget", "cooldown"):
        return "partial"  # contract §9: stopped by the quota, not by a fault
    if any(200 <= r["status"] < 300 for r in responses):
        return "partial"
    return "failed"
