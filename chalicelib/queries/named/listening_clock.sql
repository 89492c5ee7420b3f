-- Counted plays and minutes per hour of the day in a time zone; all 24 hours, zeros included.
-- Plays are selected by their UTC played_date, then placed in the hour of `tz`.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param tz tz=UTC IANA time zone of the hours (e.g. Europe/Berlin)
WITH
-- The counted plays in range (contract §6): music plays (is_music) that Spotify counts as a
-- stream (is_stream); both are macros the translation step expands (translate.py). A play
-- lasts its ms_played, else its track's duration, else 0.
counted_plays AS (
    SELECT p.user_id, p.played_at, p.played_date, p.track_id,
           coalesce(p.ms_played, t.duration_ms, 0) AS played_ms
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
      AND is_music(p.item_type) AND is_stream(p.ms_played)
),
-- A VALUES list: Athena and DuckDB spell a generated series differently.
hours AS (
    SELECT "hour"
    FROM (VALUES 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                 22, 23) AS h ("hour")
),
-- hour_in_zone is not a SQL function: the translation step rewrites it for each engine
-- (see chalicelib/queries/translate.py), since no one spelling means the same on both.
per_hour AS (
    SELECT hour_in_zone(played_at, :tz) AS "hour",
           count(*) AS plays,
           round(CAST(sum(played_ms) AS DOUBLE) / 60000.0, 2) AS minutes
    FROM counted_plays
    GROUP BY 1
)
SELECT h."hour",
       coalesce(ph.plays, 0) AS plays,
       coalesce(ph.minutes, CAST(0 AS DOUBLE)) AS minutes
FROM hours AS h
LEFT JOIN per_hour AS ph ON ph."hour" = h."hour"
ORDER BY h."hour"
