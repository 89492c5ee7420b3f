"""`playlists`: every page of the user's playlists; items of those they own or that say
`collaborative`, unless the `snapshot_id` is unchanged since its last readable snapshot.

For an unchanged playlist the envelope names (`reused_items`) the raw object that holds its
item pages — always the object that fetched them, never a chain. A 403/404 on items is kept in
the envelope like any answer; it is not an error of the run. An unreadable playlist whose
snapshot did not change is not asked again either (`unreadable_items`).
"""

from __future__ import annotations

from typing import Any

from chalicelib import layout
from chalicelib.extract.dataset import Fetch, Fetched
from chalicelib.spotify.errors import SpotifyCallError
from chalicelib.storage import get_json, update_json


def state_key(user_id: str) -> str:
    return layout.state_key("playlists", user_id)


def fetch(job: Fetch) -> Fetched:
    key = state_key(job.user_id)
    known = get_json(job.storage, key) or {}
    readable: dict[str, dict[str, Any]] = known.get("readable", {})
    unreadable: dict[str, dict[str, Any]] = known.get("unreadable", {})
    limit = job.settings.page_limit

    playlists = [
        p
        for page in job.client.pages(lambda sp: sp.current_user_playlists(limit=limit))
        for p in page.get("items") or []
        if p
    ]
    reused: dict[str, dict[str, Any]] = {}
    skipped: dict[str, dict[str, Any]] = {}
    fetched: dict[str, dict[str, Any]] = {}
    refused: dict[str, dict[str, Any]] = {}
    items = 0
    for playlist in playlists:
        pid, snapshot = playlist["id"], playlist.get("snapshot_id")
        if not wants_items(playlist, job.user_id):
            continue
        if snapshot and readable.get(pid, {}).get("snapshot_id") == snapshot:
            reused[pid] = readable[pid]
            continue
        if snapshot and unreadable.get(pid, {}).get("snapshot_id") == snapshot:
            skipped[pid] = unreadable[pid]
            continue
        try:
            items += sum(len(page.get("items") or []) for page in _item_pages(job, pid))
        except SpotifyCallError as error:
            if not error.is_unreadable:
                raise
            refused[pid] = {"snapshot_id": snapshot, "status": error.status, "raw_key": job.raw_key}
            continue
        fetched[pid] = {"snapshot_id": snapshot, "raw_key": job.raw_key}

    def advance() -> None:
        def change(doc: dict[str, Any] | None) -> dict[str, Any]:
            doc = dict(doc or {})
            doc["readable"] = {**doc.get("readable", {}), **fetched}
            doc["unreadable"] = {
                pid: v
                for pid, v in {**doc.get("unreadable", {}), **refused}.items()
                if pid not in fetched
            }
            return doc

        if fetched or refused:
            update_json(job.storage, key, change)

    return Fetched(
        extras={"reused_items": reused, "unreadable_items": {**skipped, **refused}},
        counts={
            "playlists": len(playlists),
            "items_fetched_playlists": len(fetched),
            "items": items,
            "reused_playlists": len(reused),
            "unreadable_playlists": len(refused) + len(skipped),
        },
        advance=advance,
    )


def wants_items(playlist: dict[str, Any], user_id: str) -> bool:
    """Items are readable only for the owner or a collaborator (Spotify says `collaborative`
    for some followed playlists too; those answer 403, recorded)."""
    owner = (playlist.get("owner") or {}).get("id")
    return owner == user_id or bool(playlist.get("collaborative"))


def _item_pages(job: Fetch, playlist_id: str) -> Any:
    limit = job.settings.page_limit
    return job.client.pages(
        lambda sp: sp.playlist_items(
            playlist_id, limit=limit, additional_types=("track", "episode")
        )
    )
