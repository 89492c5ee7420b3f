-- How a playlist changed on a day: its snapshot on `date` against the latest earlier snapshot
-- whose items were readable (none: every item is `added`). An item is its id, a local file its
-- name; an item listed twice counts at its first position. Nothing when the playlist's items
-- were not readable on `date`.
--
-- @param playlist string required Playlist id
-- @param date date required Snapshot date to compare
-- @param user string required User whose playlist snapshots to read
WITH snapshots AS (
    SELECT snapshot_date, items_readable
    FROM playlists
    WHERE user_id = :user AND playlist_id = :playlist
      AND snapshot_date <= CAST(:date AS DATE)
),
current_snapshot AS (
    SELECT snapshot_date
    FROM snapshots
    WHERE snapshot_date = CAST(:date AS DATE) AND items_readable
),
-- Joined to current_snapshot so that an unreadable (or missing) day reports nothing rather than
-- every earlier item as removed.
previous_snapshot AS (
    SELECT max(s.snapshot_date) AS snapshot_date
    FROM snapshots AS s
    CROSS JOIN current_snapshot AS c
    WHERE s.snapshot_date < c.snapshot_date AND s.items_readable
),
items AS (
    SELECT i.snapshot_date, i.item_id, i.item_name, i.position,
           CASE WHEN i.item_id IS NULL THEN 'local:' || i.item_name ELSE i.item_id END
               AS item_key
    FROM playlist_items AS i
    WHERE i.user_id = :user AND i.playlist_id = :playlist
      AND i.snapshot_date <= CAST(:date AS DATE)
),
first_positions AS (
    SELECT snapshot_date, item_key, item_id, item_name, position,
           row_number() OVER (PARTITION BY snapshot_date, item_key ORDER BY position)
               AS occurrence
    FROM items
),
current_items AS (
    SELECT f.item_key, f.item_id, f.item_name, f.position
    FROM first_positions AS f
    JOIN current_snapshot AS c ON c.snapshot_date = f.snapshot_date
    WHERE f.occurrence = 1
),
previous_items AS (
    SELECT f.item_key, f.item_id, f.item_name, f.position
    FROM first_positions AS f
    JOIN previous_snapshot AS p ON p.snapshot_date = f.snapshot_date
    WHERE f.occurrence = 1
)
SELECT coalesce(c.item_id, p.item_id) AS item_id,
       coalesce(c.item_name, p.item_name) AS item_name,
       CASE
           WHEN p.item_key IS NULL THEN 'added'
           WHEN c.item_key IS NULL THEN 'removed'
           WHEN c.position = p.position THEN 'same'
           ELSE 'moved'
       END AS change,
       c.position AS position,
       p.position AS previous_position
FROM current_items AS c
FULL OUTER JOIN previous_items AS p ON p.item_key = c.item_key
ORDER BY c.position NULLS LAST, p.position NULLS LAST, item_name, item_id
