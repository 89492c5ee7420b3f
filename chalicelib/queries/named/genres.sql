-- Genres by counted plays in a date range: a play counts once for each distinct genre of its
-- credited artists; share is that count over all counted plays in the range (those without a
-- genre, or without a track id, included).
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param limit int(1..1000)=10 Number of rows to return
WITH
-- The counted plays in range (contract §6): music plays (is_music) that Spotify counts as a
-- stream (is_stream); both are macros the translation step expands (translate.py).
counted_plays AS (
    SELECT p.user_id, p.played_at, p.track_id
    FROM plays AS p
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
      AND is_music(p.item_type) AND is_stream(p.ms_played)
),
-- (user_id, played_at) identifies a play; DISTINCT keeps one row per play and genre even when
-- two of its artists share the genre. A track without credits has only an artist known by
-- name, whose genres are unknown: such a play counts in the total alone.
play_genres AS (
    SELECT DISTINCT p.user_id, p.played_at, g.genre
    FROM counted_plays AS p
    JOIN track_artists_latest AS ta ON ta.track_id = p.track_id
    JOIN artists_latest AS a ON a.artist_id = ta.artist_id
    CROSS JOIN UNNEST(a.genres) AS g (genre)
),
total AS (
    SELECT count(*) AS total_plays
    FROM counted_plays
)
SELECT pg.genre,
       count(*) AS plays,
       round(CAST(count(*) AS DOUBLE) / total.total_plays, 4) AS share
FROM play_genres AS pg
CROSS JOIN total
GROUP BY pg.genre, total.total_plays
ORDER BY plays DESC, pg.genre
LIMIT :limit
