-- Plays and minutes per weekday and hour of the day in a time zone; all 168 cells, zeros
-- included, by weekday (1 = Monday ... 7 = Sunday) then hour. Plays are selected by their UTC
-- played_date, then placed on the weekday and hour of `tz`.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param tz tz=UTC IANA time zone of the weekdays and hours (e.g. Europe/Berlin)
WITH
-- The counted plays in range. Today every play is an API play (the `plays` table has no
-- `ms_played` yet), so every play counts and lasts its track's duration. When the history
-- export's columns land (contract §4, §6), this is the one place that changes: the counting
-- filter (music plays with `ms_played` null or >= 30,000) and
-- `played_ms = coalesce(p.ms_played, t.duration_ms)`.
plays_in_range AS (
    SELECT p.user_id, p.played_at, p.played_date, p.track_id, t.duration_ms AS played_ms
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
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
           round(CAST(coalesce(sum(played_ms), 0) AS DOUBLE) / 60000.0, 2) AS minutes
    FROM plays_in_range
    GROUP BY 1, 2
)
SELECT w.weekday, h."hour",
       coalesce(c.plays, 0) AS plays,
       coalesce(c.minutes, CAST(0 AS DOUBLE)) AS minutes
FROM weekdays AS w
CROSS JOIN hours AS h
LEFT JOIN per_cell AS c ON c.weekday = w.weekday AND c."hour" = h."hour"
ORDER BY w.weekday, h."hour"
