-- A track's credits as of the track's latest snapshot_date partition: all of that day's credits,
-- so an artist dropped from the credits later is not carried over from an older day.
SELECT ta.track_id, ta.artist_id, ta.artist_position, ta.snapshot_date
FROM track_artists AS ta
JOIN (
    SELECT track_id, max(snapshot_date) AS snapshot_date
    FROM track_artists
    GROUP BY track_id
) AS latest
    ON latest.track_id = ta.track_id AND latest.snapshot_date = ta.snapshot_date
