"""Lake storage: the same behaviour from the local directory and from (moto) S3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib.storage import (
    LocalStorage,
    PreconditionFailed,
    S3Storage,
    Storage,
    get_json,
    open_storage,
    update_json,
)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "lake")
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lake-bucket")
        yield S3Storage(client, "lake-bucket", "team/lake")


def test_put_get_list_delete(storage: Storage) -> None:
    assert storage.get("raw/a.json") is None
    etag = storage.put("raw/a.json", b"one")
    storage.put("raw/sub/b.json", b"two")
    storage.put("state/c.json", b"three")
    blob = storage.get("raw/a.json")
    assert blob is not None and blob.data == b"one" and blob.etag == etag
    assert list(storage.list("raw/")) == ["raw/a.json", "raw/sub/b.json"]
    assert list(storage.list("raw/sub")) == ["raw/sub/b.json"]
    assert list(storage.list("nothing/")) == []
    storage.delete("raw/a.json")
    assert storage.get("raw/a.json") is None


def test_conditional_writes(storage: Storage) -> None:
    first = storage.put("state/x.json", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        storage.put("state/x.json", b"2", if_none_match=True)
    second = storage.put("state/x.json", b"2", if_match=first)
    with pytest.raises(PreconditionFailed):
        storage.put("state/x.json", b"3", if_match=first)  # stale etag
    with pytest.raises(PreconditionFailed):
        storage.put("state/missing.json", b"3", if_match=second)
    blob = storage.get("state/x.json")
    assert blob is not None and blob.data == b"2"


def test_concurrent_updates_lose_nothing(storage: Storage) -> None:
    def add(value: int) -> None:
        update_json(storage, "state/counter.json", lambda old: sorted((old or []) + [value]))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert get_json(storage, "state/counter.json") == list(range(12))


def test_local_storage_refuses_keys_outside_the_lake(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "lake")
    with pytest.raises(ValueError, match="escapes"):
        storage.put("../outside.json", b"x")


def test_local_put_notifies_listener(tmp_path: Path) -> None:
    seen: list[str] = []
    storage = open_storage(str(tmp_path / "lake"), on_put=seen.append)
    storage.put("raw/plays/x.json.gz", b"x")
    assert seen == ["raw/plays/x.json.gz"]
