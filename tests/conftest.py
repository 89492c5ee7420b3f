"""Shared test setup: nothing may reach real AWS, and each test gets fresh services."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from moto.s3.responses import S3Response

from chalicelib import services


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Fake credentials and a fixed region: boto3 talks only to moto, never to an account.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    yield
    services.use(None)


_MOTO_PUT_LOCK = threading.Lock()


@pytest.fixture(autouse=True)
def _atomic_moto_conditional_puts(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 checks If-Match/If-None-Match and writes in one step; moto 5.2 checks, then writes,
    with no lock, so two threads can both pass the check. Tests of concurrent writers need S3's
    behaviour, so moto's PutObject is serialized here — and GetObject with it: moto closes the
    replaced version's buffer, so a read racing an overwrite fails ("I/O operation on closed
    file"), which S3 never does."""
    original_put, original_get = S3Response.put_object, S3Response.get_object

    def put_object(self: S3Response) -> object:
        with _MOTO_PUT_LOCK:
            return original_put(self)

    def get_object(self: S3Response) -> object:
        with _MOTO_PUT_LOCK:
            return original_get(self)

    monkeypatch.setattr(S3Response, "put_object", put_object)
    monkeypatch.setattr(S3Response, "get_object", get_object)
