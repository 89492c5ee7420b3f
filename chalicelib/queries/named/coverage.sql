-- How complete the history is, per UTC date of the range (every date, zeros included): counted
-- plays, split by where they came from (`source`: the API only, a history export only, or
-- both), and the minutes of that date inside a possible gap in the history (`history_gaps`)
-- that no imported export covers. Several users' gap minutes add up.
--
-- @param start date required First date (UTC), inclusive
-- @param end date required Last date (UTC), inclusive
-- @param user string Only this user's plays and gaps; all users when absent
WITH
-- The counted plays in range (contract §6): music plays (is_music) that Spotify counts as a
-- stream (is_stream); both are macros the translation step expands (translate.py). A plays
-- file written before the export's columns existed has no `source`: only the API saw those.
counted_plays AS (
    SELECT p.played_date, coalesce(p.source, 'api') AS source
    FROM plays AS p
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
      AND is_music(p.item_type) AND is_stream(p.ms_played)
),
plays_per_day AS (
    SELECT played_date,
           count(*) AS plays,
           count(CASE WHEN source = 'api' THEN 1 END) AS api_plays,
           count(CASE WHEN source = 'export' THEN 1 END) AS export_plays,
           count(CASE WHEN source = 'both' THEN 1 END) AS both_plays
    FROM counted_plays
    GROUP BY played_date
),
-- Every date of the range, from VALUES lists (Athena and DuckDB spell a generated series
-- differently, and Athena binds :start/:end only in a WHERE): anchors 1,000 days apart from
-- 0001-01-01, those near the range kept, then each of their next 1,000 days.
digits AS (
    SELECT d
    FROM (VALUES 0, 1, 2, 3, 4, 5, 6, 7, 8, 9) AS t (d)
),
thousand AS (
    SELECT a.d + 10 * b.d + 100 * c.d AS n
    FROM digits AS a
    CROSS JOIN digits AS b
    CROSS JOIN digits AS c
),
anchors AS (
    SELECT anchor
    FROM (
        SELECT CAST(date_add('day', 1000 * (t.n + 1000 * e.d), DATE '0001-01-01') AS DATE)
                   AS anchor
        FROM thousand AS t
        CROSS JOIN digits AS e
    ) AS every_anchor
    WHERE anchor <= CAST(:end AS DATE)
      AND date_add('day', 999, anchor) >= CAST(:start AS DATE)
),
days AS (
    SELECT "date",
           CAST(round(to_unixtime(CAST("date" AS TIMESTAMP)) * 1000) AS BIGINT) AS day_ms
    FROM (
        SELECT CAST(date_add('day', t.n, a.anchor) AS DATE) AS "date"
        FROM anchors AS a
        CROSS JOIN thousand AS t
    ) AS near_days
    WHERE "date" BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
),
-- The gap windows still open: no import of that user reaches from the window's start to its
-- end (one import must cover the whole window). Times in epoch milliseconds.
open_gaps AS (
    SELECT g.user_id,
           CAST(round(to_unixtime(g.gap_from) * 1000) AS BIGINT) AS from_ms,
           CAST(round(to_unixtime(g.gap_to) * 1000) AS BIGINT) AS to_ms
    FROM history_gaps AS g
    WHERE (:user IS NULL OR g.user_id = :user)
      AND NOT EXISTS (
          SELECT 1
          FROM imports AS i
          WHERE i.user_id = g.user_id AND i.first_ts <= g.gap_from AND i.last_ts >= g.gap_to
      )
),
-- Each open window cut to each date it touches.
clipped AS (
    SELECT g.user_id, d."date",
           greatest(g.from_ms, d.day_ms) AS from_ms,
           least(g.to_ms, d.day_ms + 86400000) AS to_ms
    FROM open_gaps AS g
    JOIN days AS d ON g.from_ms < d.day_ms + 86400000 AND g.to_ms > d.day_ms
),
-- A user's windows may overlap: a minute counts once. In order of start, a window adds only
-- what lies beyond the furthest end of the windows before it.
swept AS (
    SELECT "date", from_ms, to_ms,
           max(to_ms) OVER (
               PARTITION BY user_id, "date" ORDER BY from_ms, to_ms
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ) AS reach_ms
    FROM clipped
),
gaps_per_day AS (
    SELECT "date",
           round(CAST(sum(greatest(0, to_ms - greatest(from_ms, coalesce(reach_ms, from_ms))))
                      AS DOUBLE) / 60000.0, 2) AS open_gap_minutes
    FROM swept
    GROUP BY "date"
)
SELECT d."date",
       coalesce(p.plays, 0) AS plays,
       coalesce(p.api_plays, 0) AS api_plays,
       coalesce(p.export_plays, 0) AS export_plays,
       coalesce(p.both_plays, 0) AS both_plays,
       coalesce(g.open_gap_minutes, CAST(0 AS DOUBLE)) AS open_gap_minutes
FROM days AS d
LEFT JOIN plays_per_day AS p ON p.played_date = d."date"
LEFT JOIN gaps_per_day AS g ON g."date" = d."date"
ORDER BY d."date"
