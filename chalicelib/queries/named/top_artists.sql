-- Most played artists in a date range; a play counts once for each credited artist.
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
-- DISTINCT: an artist credited twice on one track still gets the play once.
credits AS (
    SELECT DISTINCT track_id, artist_id
    FROM track_artists_latest
)
SELECT c.artist_id, a.name AS artist_name,
       count(*) AS plays,
       round(CAST(coalesce(sum(p.duration_ms), 0) AS DOUBLE) / 60000.0, 2) AS minutes
FROM plays_in_range AS p
JOIN credits AS c ON c.track_id = p.track_id
LEFT JOIN artists_latest AS a ON a.artist_id = c.artist_id
GROUP BY c.artist_id, a.name
ORDER BY plays DESC, artist_name NULLS LAST, artist_id
LIMIT :limit
