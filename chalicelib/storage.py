"""Lake storage: one small interface, an S3 backend and a local-directory backend.

Keys are always relative to the lake root (`raw/...`, `curated/...`, `state/...`). Both backends
support conditional writes, which is how every read-modify-write in the lake is guarded against
concurrent writers: `if_none_match=True` creates only when absent, `if_match=etag` replaces only
the version that was read. A lost race raises `PreconditionFailed`; `update()` retries it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from chalicelib.config import split_s3_uri

T = TypeVar("T")


class PreconditionFailed(Exception):
    """A conditional write lost: the object changed (or appeared) since it was read."""


@dataclass(frozen=True)
class Blob:
    data: bytes
    etag: str


class Storage(Protocol):
    """What the pipeline needs from a lake: get, conditional put, delete, list."""

    uri: str

    def get(self, key: str) -> Blob | None: ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "application/octet-stream",
    ) -> str: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[str]: ...


PutListener = Callable[[str], None]


class LocalStorage:
    """A lake in a local directory. Conditional writes are made atomic with a file lock."""

    def __init__(self, root: str | os.PathLike[str], on_put: PutListener | None = None) -> None:
        self.root = Path(root).resolve()
        self.uri = str(self.root)
        # Called after every successful put with the key: the local stand-in for S3 events.
        self.on_put = on_put

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"key escapes the lake: {key!r}")
        return path

    def get(self, key: str) -> Blob | None:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
        return Blob(data, _etag(data))

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "application/octet-stream",
    ) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock(path):
            if if_none_match or if_match is not None:
                current = self.get(key)
                if if_none_match and current is not None:
                    raise PreconditionFailed(key)
                if if_match is not None and (current is None or current.etag != if_match):
                    raise PreconditionFailed(key)
            # Write then rename: a reader never sees half an object.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        if self.on_put is not None:
            self.on_put(key)
        return _etag(data)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / prefix
        start = base if base.is_dir() else base.parent
        if not start.exists():
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(key)
        yield from sorted(found)

    def list_after(self, prefix: str, start_after: str) -> Iterator[str]:
        """Keys under `prefix` sorting after `start_after` (S3's `StartAfter`)."""
        return (key for key in self.list(prefix) if key > start_after)

    @contextlib.contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        lock_path = path.parent / f".{path.name}.lock"
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class S3Storage:
    """A lake in `s3://bucket/prefix`. Conditional writes use S3's IfMatch / IfNoneMatch."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def get(self, key: str) -> Blob | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except self.client.exceptions.NoSuchKey:
            return None
        return Blob(answer["Body"].read(), answer["ETag"])

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "application/octet-stream",
    ) -> str:
        extra: dict[str, str] = {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        try:
            answer = self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=data,
                ContentType=content_type,
                **extra,
            )
        except self.client.exceptions.NoSuchKey as error:  # IfMatch on a missing key
            raise PreconditionFailed(key) from error
        except self.client.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"}:
                raise PreconditionFailed(key) from error
            raise
        return str(answer["ETag"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def list(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]

    def list_after(self, prefix: str, start_after: str) -> Iterator[str]:
        """Keys under `prefix` sorting after `start_after`: S3 starts the listing there, so
        the requests grow with what is new, not with everything under the prefix."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix, StartAfter=self.prefix + start_after
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]


def open_storage(
    lake_uri: str,
    s3_client: Callable[[], Any] | None = None,
    on_put: PutListener | None = None,
) -> Storage:
    """The storage for `lake_uri`: `s3://bucket[/prefix]` (with the client `s3_client()` makes)
    or a local directory."""
    if lake_uri.startswith("s3://"):
        if s3_client is None:
            raise ValueError("an s3:// lake needs an S3 client")
        return S3Storage(s3_client(), *split_s3_uri(lake_uri))
    return LocalStorage(lake_uri, on_put=on_put)


def update(
    storage: Storage,
    key: str,
    change: Callable[[bytes | None], bytes | None],
    *,
    attempts: int = 20,
    content_type: str = "application/octet-stream",
) -> bytes | None:
    """Read-modify-write `key` under a conditional write, retrying lost races.

    `change` gets the current bytes (None when absent) and returns the new bytes, or None to
    leave the object as it is. Returns what was written (or left).
    """
    for attempt in range(attempts):
        current = storage.get(key)
        new = change(None if current is None else current.data)
        if new is None or (current is not None and new == current.data):
            return None if current is None else current.data
        try:
            if current is None:
                storage.put(key, new, if_none_match=True, content_type=content_type)
            else:
                storage.put(key, new, if_match=current.etag, content_type=content_type)
            return new
        except PreconditionFailed:
            time.sleep(min(0.05 * 2**attempt, 1.0) * random.random())
    raise PreconditionFailed(f"{key}: gave up after {attempts} concurrent-write retries")


def get_json(storage: Storage, key: str) -> Any | None:
    blob = storage.get(key)
    return None if blob is None else json.loads(blob.data)


def update_json(
    storage: Storage,
    key: str,
    change: Callable[[Any | None], Any | None],
    *,
    attempts: int = 20,
) -> Any | None:
    """`update()` for JSON documents: `change` maps the current value (or None) to the new one."""

    def change_bytes(data: bytes | None) -> bytes | None:
        new = change(None if data is None else json.loads(data))
        return None if new is None else dump_json(new)

    written = update(storage, key, change_bytes, attempts=attempts, content_type="application/json")
    return None if written is None else json.loads(written)


def create_json(storage: Storage, key: str, value: Any) -> bool:
    """Write `value` at `key` only if nothing is there yet; False when something was."""
    try:
        storage.put(key, dump_json(value), if_none_match=True, content_type="application/json")
    except PreconditionFailed:
        return False
    return True


def dump_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


def list_after(storage: Storage, prefix: str, start_after: str | None) -> Iterator[str]:
    """Keys under `prefix` that sort after `start_after` (all of them when None), ascending.

    A backend with `list_after` (S3's `StartAfter`) starts its listing there; any other storage
    (a test double) is filtered, which gives the same keys.
    """
    if start_after is None:
        return storage.list(prefix)
    method = getattr(storage, "list_after", None)
    if method is not None:
        return iter(method(prefix, start_after))
    return (key for key in storage.list(prefix) if key > start_after)


# S3 error codes that say "try again" (throttling, a server-side fault), not "this is wrong".
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "500",
        "502",
        "503",
        "504",
    }
)


class TransientStorageError(Exception):
    """Storage kept failing with errors that say "try again": not the object's fault, so the
    caller must not quarantine it; raising lets S3's retry or the next reconcile re-drive it."""


def is_transient(error: BaseException) -> bool:
    """True for throttling, 5xx and connection errors: worth retrying, never the data's fault."""
    if isinstance(error, TransientStorageError | ConnectionError | TimeoutError):
        return True
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500)
    # botocore's connection and timeout errors (EndpointConnectionError, ReadTimeoutError, ...)
    # do not subclass the builtins; match them by family name, without importing botocore.
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"HTTPClientError", "ConnectionError", "ConnectTimeoutError"})


def retry_transient(
    action: Callable[[], T], *, attempts: int = 4, base_delay: float = 0.2, what: str = ""
) -> T:
    """`action()`, retried (bounded, with jittered backoff) while it fails transiently; raises
    `TransientStorageError` when every attempt did. Other errors pass through at once."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt == attempts - 1:
                raise TransientStorageError(f"{what}: {type(error).__name__}: {error}") from error
            time.sleep(base_delay * 2**attempt * random.random())
    raise AssertionError("unreachable")


class LeaseBusy(TransientStorageError):
    """Another holder kept the lease for longer than the caller would wait: try again later."""


@contextlib.contextmanager
def lease(
    storage: Storage,
    key: str,
    *,
    seconds: float,
    wait: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the lease document `key` (taken with a conditional write) for at most `seconds`:
    the writers of a group of objects that must change together take turns. Raises `LeaseBusy`
    after `wait` seconds; a holder that dies frees it when its `seconds` run out."""
    owner = os.urandom(8).hex()
    give_up = clock() + wait
    while True:
        current = storage.get(key)
        held = json.loads(current.data) if current is not None else {}
        if held.get("until", 0) <= clock():
            taken = dump_json({"owner": owner, "until": clock() + seconds})
            try:
                if current is None:
                    storage.put(key, taken, if_none_match=True, content_type="application/json")
                else:
                    storage.put(key, taken, if_match=current.etag, content_type="application/json")
                break
            except PreconditionFailed:
                pass  # another writer took it first
        if clock() >= give_up:
            raise LeaseBusy(f"{key} stayed leased for {wait:.0f} s")
        sleep(0.05 + 0.45 * random.random())
    try:
        yield
    finally:
        mine = storage.get(key)
        if mine is not None and json.loads(mine.data).get("owner") == owner:
            with contextlib.suppress(PreconditionFailed):  # expired and taken meanwhile
                free = dump_json({"owner": None, "until": 0})
                storage.put(key, free, if_match=mine.etag, content_type="application/json")
