-- Podcasts and audiobooks by minutes in a date range: per show, its distinct episodes, its
-- episode plays of at least 30 s and their minutes. Episodes and audiobooks count here only.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param limit int(1..1000)=10 Number of rows to return
WITH
-- Episode and audiobook plays that Spotify counts as a stream (is_stream, a macro the
-- translation step expands: translate.py); only a history export knows them. An episode is
-- its id, or its name when the id is unknown ("id:" / "name:" keep the two apart).
show_plays AS (
    SELECT p.show_name,
           coalesce('id:' || p.episode_id, 'name:' || p.episode_name) AS episode_key,
           coalesce(p.ms_played, 0) AS played_ms
    FROM plays AS p
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
      AND p.item_type IN ('episode', 'audiobook') AND is_stream(p.ms_played)
)
SELECT show_name,
       count(DISTINCT episode_key) AS episodes,
       count(*) AS plays,
       round(CAST(sum(played_ms) AS DOUBLE) / 60000.0, 2) AS minutes
FROM show_plays
GROUP BY show_name
ORDER BY minutes DESC, show_name NULLS LAST
LIMIT :limit
