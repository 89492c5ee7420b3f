-- Most played tracks in a date range, with their credited artists in credit order. Plays
-- without a track id (local files) have no track to rank.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param limit int(1..1000)=10 Number of rows to return
WITH plays_in_range AS (
    SELECT p.user_id, p.played_at, p.played_date, p.track_id, t.duration_ms
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
),
track_plays AS (
    SELECT track_id,
           count(*) AS plays,
           round(CAST(coalesce(sum(duration_ms), 0) AS DOUBLE) / 60000.0, 2) AS minutes
    FROM plays_in_range
    WHERE track_id IS NOT NULL
    GROUP BY track_id
),
credited_names AS (
    SELECT ta.track_id,
           array_join(array_agg(a.name ORDER BY ta.artist_position), ', ') AS artist_names
    FROM track_artists_latest AS ta
    JOIN artists_latest AS a ON a.artist_id = ta.artist_id
    WHERE a.name IS NOT NULL
    GROUP BY ta.track_id
)
SELECT tp.track_id, t.name AS track_name, n.artist_names, tp.plays, tp.minutes
FROM track_plays AS tp
LEFT JOIN tracks_latest AS t ON t.track_id = tp.track_id
LEFT JOIN credited_names AS n ON n.track_id = tp.track_id
ORDER BY tp.plays DESC, track_name NULLS LAST, tp.track_id
LIMIT :limit
