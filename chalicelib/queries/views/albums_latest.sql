-- Each album's row from the latest snapshot_date partition that holds it.
SELECT album_id, name, album_type, release_date, release_date_precision, release_year,
       total_tracks, snapshot_date
FROM (
    SELECT a.album_id, a.name, a.album_type, a.release_date, a.release_date_precision,
           a.release_year, a.total_tracks, a.snapshot_date,
           row_number() OVER (PARTITION BY a.album_id ORDER BY a.snapshot_date DESC) AS recency
    FROM albums AS a
) AS ranked
WHERE recency = 1
