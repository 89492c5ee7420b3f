-- A user's top artists or tracks on a day, each with its rank in the latest earlier snapshot
-- of the same type and range and how far it moved (previous_rank - rank; null when new).
--
-- @param item_type enum(artist|track) required Rank artists or tracks
-- @param time_range enum(short_term|medium_term|long_term) required Spotify's time range
-- @param date date required Snapshot date
-- @param user string required User whose top items to read
WITH snapshots AS (
    SELECT snapshot_date, item_type, rank, item_id
    FROM top_items
    WHERE user_id = :user AND item_type = :item_type AND time_range = :time_range
      AND snapshot_date <= CAST(:date AS DATE)
),
current_items AS (
    SELECT item_type, rank, item_id
    FROM snapshots
    WHERE snapshot_date = CAST(:date AS DATE)
),
previous_snapshot AS (
    SELECT max(snapshot_date) AS snapshot_date
    FROM snapshots
    WHERE snapshot_date < CAST(:date AS DATE)
),
previous_ranks AS (
    SELECT s.item_id, min(s.rank) AS rank
    FROM snapshots AS s
    JOIN previous_snapshot AS ps ON ps.snapshot_date = s.snapshot_date
    GROUP BY s.item_id
)
SELECT c.rank,
       c.item_id,
       CASE c.item_type WHEN 'artist' THEN a.name ELSE t.name END AS name,
       pr.rank AS previous_rank,
       pr.rank - c.rank AS movement
FROM current_items AS c
LEFT JOIN previous_ranks AS pr ON pr.item_id = c.item_id
LEFT JOIN artists_latest AS a ON a.artist_id = c.item_id AND c.item_type = 'artist'
LEFT JOIN tracks_latest AS t ON t.track_id = c.item_id AND c.item_type = 'track'
ORDER BY c.rank
