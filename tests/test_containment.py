"""A fault inside one dataset of one user ends that dataset only (issue 8): what was received
still lands (`meta.complete: false`), and every other dataset and user goes on."""

from __future__ import annotations

from typing import Any

import extract_helpers as helpers
import pytest
from extract_helpers import connect, envelope_of, make_services

from chalicelib import layout
from chalicelib.extract import runner, top_items
from chalicelib.storage import get_json
from chalicelib.transform import handler, parquet_io
from spotify_standin import DEMO_USER, FRIEND_USER, StandIn

standin, lake_uri, local_lake = helpers.standin, helpers.lake_uri, helpers.local_lake

PER_USER = ("plays", "playlists", "top_items", "saved_tracks")


def two_users(standin: StandIn, lake: str) -> Any:
    svc = make_services(standin, lake)
    connect(svc, standin)
    connect(svc, standin, FRIEND_USER)
    return svc


def odd_plays_answer(standin: StandIn, svc: Any, odd: str) -> dict[str, Any]:
    """A real recently-played answer whose newest play has the `played_at` `odd`."""
    probe = runner.run_extraction(svc, datasets=["plays"], users=[DEMO_USER], run_at=standin.now)
    [answer] = envelope_of(svc, probe, "plays")["responses"]
    body = answer["body"]
    body["items"][0]["played_at"] = odd
    standin.clear_log()
    return dict(body)


ODD_PLAYED_AT = {
    "yesterday, around noon": "unparseable_played_at",
    "0001-01-01T00:00:00+01:00": "unparseable_played_at",  # parses, but overflows into UTC
    "2999-01-01T00:00:00Z": "future_played_at",  # would hold the watermark for good
}


@pytest.mark.parametrize("odd", list(ODD_PLAYED_AT))
def test_a_played_at_that_does_not_parse_costs_no_poll(
    standin: StandIn, lake_uri: str, odd: str
) -> None:
    svc = two_users(standin, lake_uri)
    body = odd_plays_answer(standin, svc, odd)
    watermark = get_json(svc.storage, layout.state_key("plays", DEMO_USER))["newest_played_at"]
    # Every user's next poll gets the odd answer (it stays among the newest 50).
    standin.inject(r"/me/player/recently-played", 200, times=2, body=body)

    record = runner.run_extraction(svc, run_at=standin.now)

    assert record["status"] == "succeeded", record["errors"]
    for user in (DEMO_USER, FRIEND_USER):
        plays = record["results"][user]["plays"]
        assert plays["status"] == "succeeded"
        assert plays["counts"] == {"plays": len(body["items"])}
        [warning] = [w for w in plays["warnings"] if w["type"] == ODD_PLAYED_AT[odd]]
        assert warning["count"] == 1
        envelope = envelope_of(svc, record, "plays", user)
        assert envelope["meta"]["complete"] is True
        assert envelope["responses"][0]["body"]["items"][0]["played_at"] == odd
        # The transform keeps every other play of the answer.
        [key] = plays["raw_objects"]
        assert handler.transform_object(svc.storage, key)["status"] != "quarantined"
        written = {
            row["played_at"]
            for table_key in svc.storage.list("curated/plays/")
            for row in parquet_io.decode(svc.storage.get(table_key).data)[0]
            if row["user_id"] == user
        }
        assert len(written) >= len(body["items"]) - 1
        for dataset in PER_USER[1:]:
            assert record["results"][user][dataset]["status"] == "succeeded", (user, dataset)
    # The watermark comes from the plays that parse, and never moves backwards.
    state = get_json(svc.storage, layout.state_key("plays", DEMO_USER))
    assert state["newest_played_at"] == watermark


def test_a_fault_in_one_dataset_ends_that_dataset_only(
    standin: StandIn, lake_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = two_users(standin, lake_uri)
    real_fetch = top_items.fetch
    faults: list[str] = []

    def buggy(job: Any) -> Any:
        if job.user_id == FRIEND_USER:
            return real_fetch(job)
        job.client.call(lambda sp: sp.current_user_top_artists(limit=50, time_range="short_term"))
        faults.append(job.user_id)
        return {}["a bug"]  # KeyError after one answer was received

    monkeypatch.setattr(top_items, "fetch", buggy)

    record = runner.run_extraction(svc, run_at=standin.now)

    assert faults == [DEMO_USER]
    assert record["status"] == "partial"
    broken = record["results"][DEMO_USER]["top_items"]
    assert broken["status"] == "failed"
    [error] = broken["errors"]
    assert error["reason"] == "dataset_error" and error["message"].startswith("KeyError")
    assert broken["calls"] == {"GET /me/top/artists": 1}
    # what was received landed, marked incomplete
    envelope = envelope_of(svc, record, "top_items")
    assert envelope["meta"]["complete"] is False
    assert [r["status"] for r in envelope["responses"]] == [200]
    # everything else went on: the other datasets, the other user, enrichment
    for user in (DEMO_USER, FRIEND_USER):
        for dataset in PER_USER:
            if (user, dataset) != (DEMO_USER, "top_items"):
                assert record["results"][user][dataset]["status"] == "succeeded", (user, dataset)
    [artists] = [o["artists"] for o in record["results"].values() if "artists" in o]
    assert artists["status"] == "succeeded"
    assert not any(e["reason"] == "internal_error" for e in record["errors"])


def test_a_raw_object_that_cannot_be_written_does_not_move_state(
    standin: StandIn, local_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = two_users(standin, local_lake)
    real_write = runner.write_envelope

    def failing(storage: Any, key: str, envelope: dict[str, Any]) -> None:
        if key.startswith("raw/plays/") and f"user={DEMO_USER}/" in key:
            raise OSError("disk full")
        real_write(storage, key, envelope)

    monkeypatch.setattr(runner, "write_envelope", failing)

    record = runner.run_extraction(svc, datasets=["plays", "saved_tracks"], run_at=standin.now)

    plays = record["results"][DEMO_USER]["plays"]
    assert plays["status"] == "failed" and plays["raw_objects"] == []
    assert plays["errors"][0]["reason"] == "dataset_error"
    assert "OSError: disk full" in plays["errors"][0]["message"]
    assert plays["calls"] == {"GET /me/player/recently-played": 1}  # counted all the same
    # no watermark and no successful poll recorded for what did not land
    assert get_json(svc.storage, layout.state_key("plays", DEMO_USER)) is None
    assert record["results"][FRIEND_USER]["plays"]["status"] == "succeeded"
    assert record["results"][DEMO_USER]["saved_tracks"]["status"] == "succeeded"
    assert record["status"] == "partial"


class FailingPuts:
    """The lake, but every put under one of `prefixes` fails with `error` (what S3 does when
    it is down for a key range, or a bucket policy refuses it)."""

    def __init__(self, storage: Any, prefixes: tuple[str, ...], error: Exception) -> None:
        self.storage, self.prefixes, self.error = storage, prefixes, error

    def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
        if key.startswith(self.prefixes):
            raise self.error
        return self.storage.put(key, data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


def test_state_that_cannot_be_saved_loses_neither_the_answers_nor_their_count(
    standin: StandIn, local_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = two_users(standin, local_lake)
    broken = FailingPuts(svc.storage, (layout.state_key("plays", DEMO_USER),), OSError("denied"))
    monkeypatch.setattr(svc, "storage", broken)

    record = runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)

    plays = record["results"][DEMO_USER]["plays"]
    assert plays["status"] == "failed"
    assert "state not saved" in plays["errors"][0]["message"]
    assert plays["raw_objects"] and svc.storage.get(plays["raw_objects"][0]) is not None
    assert plays["calls"] == {"GET /me/player/recently-played": 1}
    assert record["calls"] == 2  # both users' polls, in the record and the ledger
    day = layout.utc(standin.now).date().isoformat()
    assert get_json(svc.storage, f"state/quota/ledger/{day}.json") == {"calls": 2}
    assert record["results"][FRIEND_USER]["plays"]["status"] == "succeeded"


def test_bookkeeping_that_cannot_be_written_stops_no_user(
    standin: StandIn, local_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = two_users(standin, local_lake)
    broken = FailingPuts(svc.storage, ("state/quota/", "state/users/"), OSError("denied"))
    monkeypatch.setattr(svc, "storage", broken)

    record = runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)

    assert record["status"] == "succeeded"
    for user in (DEMO_USER, FRIEND_USER):
        plays = record["results"][user]["plays"]
        assert plays["status"] == "succeeded"
        assert {w["what"] for w in plays["warnings"] if w["type"] == "not_recorded"} == {
            "quota ledger",
            "last poll",
        }
