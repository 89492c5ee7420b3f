-- Listening per day: plays, minutes, distinct tracks and distinct credited artists, one row per
-- date that has plays.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
WITH plays_in_range AS (
    SELECT p.user_id, p.played_at, p.played_date, p.track_id, t.duration_ms
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
),
per_day AS (
    SELECT played_date,
           count(*) AS plays,
           -- A play of an unknown track (a local file) counts with 0 minutes.
           round(CAST(coalesce(sum(duration_ms), 0) AS DOUBLE) / 60000.0, 2) AS minutes,
           count(DISTINCT track_id) AS distinct_tracks
    FROM plays_in_range
    GROUP BY played_date
),
-- Counted apart from per_day: joining credits there would repeat each play once per artist.
artists_per_day AS (
    SELECT p.played_date, count(DISTINCT ta.artist_id) AS distinct_artists
    FROM plays_in_range AS p
    JOIN track_artists_latest AS ta ON ta.track_id = p.track_id
    GROUP BY p.played_date
)
SELECT d.played_date AS "date", d.plays, d.minutes, d.distinct_tracks,
       coalesce(a.distinct_artists, 0) AS distinct_artists
FROM per_day AS d
LEFT JOIN artists_per_day AS a ON a.played_date = d.played_date
ORDER BY d.played_date
