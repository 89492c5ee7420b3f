-- Each track's row from the latest snapshot_date partition that holds it.
SELECT track_id, name, album_id, duration_ms, explicit, isrc, disc_number, track_number,
       snapshot_date
FROM (
    SELECT t.track_id, t.name, t.album_id, t.duration_ms, t.explicit, t.isrc, t.disc_number,
           t.track_number, t.snapshot_date,
           row_number() OVER (PARTITION BY t.track_id ORDER BY t.snapshot_date DESC) AS recency
    FROM tracks AS t
) AS ranked
WHERE recency = 1
