-- Genres by plays in a date range: a play counts once for each distinct genre of its credited
-- artists; share is that count over all plays in the range (those without a genre included).
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
-- (user_id, played_at) identifies a play; DISTINCT keeps one row per play and genre even when
-- two of its artists share the genre.
play_genres AS (
    SELECT DISTINCT p.user_id, p.played_at, g.genre
    FROM plays_in_range AS p
    JOIN track_artists_latest AS ta ON ta.track_id = p.track_id
    JOIN artists_latest AS a ON a.artist_id = ta.artist_id
    CROSS JOIN UNNEST(a.genres) AS g (genre)
),
total AS (
    SELECT count(*) AS total_plays
    FROM plays_in_range
)
SELECT pg.genre,
       count(*) AS plays,
       round(CAST(count(*) AS DOUBLE) / total.total_plays, 4) AS share
FROM play_genres AS pg
CROSS JOIN total
GROUP BY pg.genre, total.total_plays
ORDER BY plays DESC, pg.genre
LIMIT :limit
