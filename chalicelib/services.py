"""The backends a handler needs, built lazily and once from a `Config`.

`app.py` asks `current()` for them; the CLI and tests install their own with `use()`. Units
elsewhere receive the one backend they use (a `Storage`, a secret store, a query engine) from
here instead of creating clients themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.config import Config, load_config
from chalicelib.storage import PutListener, Storage, open_storage

if TYPE_CHECKING:  # built lazily: the Lambdas that need neither do not import them
    from chalicelib.metrics import Metrics
    from chalicelib.queries import QueryEngine
    from chalicelib.secrets import SecretStore


class Services:
    """Lazily built backends for one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        on_put: PutListener | None = None,
        boto_client: Callable[[str], Any] | None = None,
    ) -> None:
        self.config = config
        # Local lake only: called after each write, to dispatch S3-style events.
        self.on_put = on_put
        self._boto_client = boto_client

    def client(self, service: str) -> Any:
        """A boto3 client, created once per service."""
        return self._clients(service)

    @functools.cache  # noqa: B019 - one Services per process; caching per instance is the point
    def _clients(self, service: str) -> Any:
        if self._boto_client is not None:
            return self._boto_client(service)
        import boto3

        return boto3.client(service, region_name=self.config.aws_region)

    @functools.cached_property
    def storage(self) -> Storage:
        return open_storage(self.config.lake_uri, lambda: self.client("s3"), on_put=self.on_put)

    @functools.cached_property
    def secrets(self) -> SecretStore:
        """The secret store, one per process: the app's secrets are read once (cold start)."""
        from chalicelib.secrets import build_secrets

        return build_secrets(self.config, lambda: self.client("ssm"))

    @functools.cached_property
    def query_engine(self) -> QueryEngine:
        """Athena or DuckDB, as configured; one per process so executions can be looked up."""
        from chalicelib import queries

        return queries.open_engine(self.config, lambda: self.client("athena"))

    @functools.cached_property
    def metrics(self) -> Metrics:
        """CloudWatch on a deployed stage (its client made on the first put), else in memory."""
        from chalicelib.metrics import build_metrics

        return build_metrics(self.config, lambda: self.client("cloudwatch"))


def from_environment() -> Services:
    """A deployed function's services: everything from the environment (contract §2)."""
    return Services(load_config())


_current: Services | None = None
_build: Callable[[], Services] = from_environment


def current() -> Services:
    """The process-wide services: those `use()` installed, else built once by the factory
    (`from_environment` unless `build_with` named another)."""
    global _current
    if _current is None:
        _current = _build()
    return _current


def use(services: Services | None) -> None:
    """Install `services` as the process-wide ones (the CLI and tests); None forgets them."""
    global _current
    _current = services


def build_with(factory: Callable[[], Services]) -> None:
    """How `current()` builds the services on first use (a local lake: `spotify_etl.local`)."""
    global _build
    _build = factory
