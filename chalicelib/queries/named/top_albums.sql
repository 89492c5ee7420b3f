-- Most played albums in a date range, with the credited artists of the album's tracks played in
-- the range. Plays without a track id (local files) or whose track has no album are left out.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param limit int(1..1000)=10 Number of rows to return
WITH
-- The counted plays in range, with their track's album. Today every play is an API play (the
-- `plays` table has no `ms_played` yet), so every play counts and lasts its track's duration.
-- When the history export's columns land (contract §4, §6), this is the one place that
-- changes: the counting filter (music plays with `ms_played` null or >= 30,000),
-- `played_ms = coalesce(p.ms_played, t.duration_ms)` and the name fallback
-- `album_name = coalesce(al.name, p.album_name)` (an album known by name only has a null id).
plays_in_range AS (
    SELECT p.user_id, p.played_at, p.played_date, p.track_id, t.album_id,
           al.name AS album_name, t.duration_ms AS played_ms
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    LEFT JOIN albums_latest AS al ON al.album_id = t.album_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
),
album_plays AS (
    SELECT album_id, album_name,
           count(*) AS plays,
           round(CAST(coalesce(sum(played_ms), 0) AS DOUBLE) / 60000.0, 2) AS minutes
    FROM plays_in_range
    WHERE track_id IS NOT NULL AND album_id IS NOT NULL
    GROUP BY album_id, album_name
),
-- `artist_names`: the albums table carries no artists, so an album's artists are the credited
-- artists of its tracks played in the range, each once, ordered by the first (lowest) credit
-- position it holds on any of those tracks, then by name and id; joined with ", ". Artists
-- without a known name are left out, as in top_tracks.
album_credits AS (
    SELECT p.album_id, ta.artist_id, min(ta.artist_position) AS first_position
    FROM (
        SELECT DISTINCT album_id, track_id
        FROM plays_in_range
        WHERE track_id IS NOT NULL AND album_id IS NOT NULL
    ) AS p
    JOIN track_artists_latest AS ta ON ta.track_id = p.track_id
    GROUP BY p.album_id, ta.artist_id
),
credited_names AS (
    SELECT c.album_id,
           array_join(array_agg(a.name ORDER BY c.first_position, a.name, c.artist_id), ', ')
               AS artist_names
    FROM album_credits AS c
    JOIN artists_latest AS a ON a.artist_id = c.artist_id
    WHERE a.name IS NOT NULL
    GROUP BY c.album_id
)
SELECT ap.album_id, ap.album_name, n.artist_names, ap.plays, ap.minutes
FROM album_plays AS ap
LEFT JOIN credited_names AS n ON n.album_id = ap.album_id
ORDER BY ap.plays DESC, ap.album_name NULLS LAST, ap.album_id NULLS LAST
LIMIT :limit
