-- Each artist's row from the latest snapshot_date partition that holds it, except `genres`: the
-- latest non-null value, because a day whose source carried no genres (a track's simplified
-- artist) says nothing about them.
WITH ranked AS (
    SELECT a.artist_id, a.name, a.snapshot_date,
           row_number() OVER (PARTITION BY a.artist_id ORDER BY a.snapshot_date DESC) AS recency
    FROM artists AS a
),
known_genres AS (
    SELECT a.artist_id, a.genres,
           row_number() OVER (PARTITION BY a.artist_id ORDER BY a.snapshot_date DESC) AS recency
    FROM artists AS a
    WHERE a.genres IS NOT NULL
)
SELECT r.artist_id, r.name, g.genres, r.snapshot_date
FROM ranked AS r
LEFT JOIN known_genres AS g
    ON g.artist_id = r.artist_id AND g.recency = 1
WHERE r.recency = 1
