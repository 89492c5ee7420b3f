-- Counted plays and minutes per weekday and hour of the day in a time zone; all 168 cells,
-- zeros included, by weekday (1 = Monday ... 7 = Sunday) then hour. Plays are selected by their
-- UTC played_date, then placed on the weekday and hour of `tz`.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param tz tz=UTC IANA time zone of the weekdays and hours (e.g. Europe/Berlin)
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
-- VALUES lists: Athena and DuckDB spell a generated series differently.
weekdays AS (
    SELECT weekday
    FROM (VALUES 1, 2, 3, 4, 5, 6, 7) AS w (weekday)
),
hours AS (
    SELECT "hour"
    FROM (VALUES 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                 22, 23) AS h ("hour")
),
-- weekday_in_zone and hour_in_zone are not SQL functions: the translation step rewrites them
-- for each engine (see chalicelib/queries/translate.py). Both read the same local time, so a
-- play at 23:30 UTC lands on the next day's weekday where the zone is ahead of UTC.
per_cell AS (
    SELECT weekday_in_zone(played_at, :tz) AS weekday,
           hour_in_zone(played_at, :tz) AS "hour",
           count(*) AS plays,
           round(CAST(sum(played_ms) AS DOUBLE) / 60000.0, 2) AS minutes
    FROM counted_plays
    GROUP BY 1, 2
)
SELECT w.weekday, h."hour",
       coalesce(c.plays, 0) AS plays,
       coalesce(c.minutes, CAST(0 AS DOUBLE)) AS minutes
FROM weekdays AS w
CROSS JOIN hours AS h
LEFT JOIN per_cell AS c ON c.weekday = w.weekday AND c."hour" = h."hour"
ORDER BY w.weekday, h."hour"
