-- Listening per day: counted plays, minutes, distinct tracks and distinct credited artists, one
-- row per date that has counted plays.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
WITH
-- The counted plays in range (contract §6): music plays (is_music) that Spotify counts as a
-- stream (is_stream); both are macros the translation step expands (translate.py). A play
-- lasts its ms_played, else its track's duration, else 0 (a local file only the API saw).
counted_plays AS (
    SELECT p.user_id, p.played_at, p.played_date, p.track_id,
           coalesce(t.name, p.track_name) AS track_name, p.artist_name,
           coalesce(p.ms_played, t.duration_ms, 0) AS played_ms
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
      AND is_music(p.item_type) AND is_stream(p.ms_played)
),
per_day AS (
    SELECT played_date,
           count(*) AS plays,
           round(CAST(sum(played_ms) AS DOUBLE) / 60000.0, 2) AS minutes
    FROM counted_plays
    GROUP BY played_date
),
-- A track is its id, or, known by name only (an export row without a track id), its name and
-- the play's artist name; a play with neither (a local file only the API saw) is no track.
tracks_per_day AS (
    SELECT played_date, count(*) AS distinct_tracks
    FROM (
        SELECT DISTINCT played_date, track_id,
               CASE WHEN track_id IS NULL THEN track_name END AS track_name,
               CASE WHEN track_id IS NULL THEN artist_name END AS artist_name
        FROM counted_plays
        WHERE track_id IS NOT NULL OR track_name IS NOT NULL
    ) AS day_tracks
    GROUP BY played_date
),
-- A play's credited artists: its track's credits in track_artists_latest; a track without
-- credits there has one, known by the play's artist_name only. An artist is its id, or its
-- name when the id is unknown. Counted apart from per_day: joining credits there would repeat
-- each play once per artist.
artists_per_day AS (
    SELECT played_date, count(*) AS distinct_artists
    FROM (
        SELECT DISTINCT p.played_date, ta.artist_id,
               CASE WHEN ta.track_id IS NULL THEN p.artist_name END AS artist_name
        FROM counted_plays AS p
        LEFT JOIN track_artists_latest AS ta ON ta.track_id = p.track_id
        WHERE ta.track_id IS NOT NULL OR p.artist_name IS NOT NULL
    ) AS day_artists
    GROUP BY played_date
)
SELECT d.played_date AS "date", d.plays, d.minutes,
       coalesce(t.distinct_tracks, 0) AS distinct_tracks,
       coalesce(a.distinct_artists, 0) AS distinct_artists
FROM per_day AS d
LEFT JOIN tracks_per_day AS t ON t.played_date = d.played_date
LEFT JOIN artists_per_day AS a ON a.played_date = d.played_date
ORDER BY d.played_date
