-- Most played artists in a date range; a counted play counts once for each credited artist. An
-- artist known by name only (from a history export, not yet enriched) has a null id.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param limit int(1..1000)=10 Number of rows to return
WITH
-- The counted plays in range (contract §6): music plays (is_music) that Spotify counts as a
-- stream (is_stream); both are macros the translation step expands (translate.py). A play
-- lasts its ms_played, else its track's duration, else 0.
counted_plays AS (
    SELECT p.user_id, p.played_at, p.track_id, p.artist_name,
           coalesce(p.ms_played, t.duration_ms, 0) AS played_ms
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
      AND is_music(p.item_type) AND is_stream(p.ms_played)
),
-- A play's credited artists: its track's credits in track_artists_latest, each artist once
-- (DISTINCT: an artist credited twice on one track still gets the play once); a track without
-- credits there has one, known by the play's artist_name only. (user_id, played_at)
-- identifies a play.
play_credits AS (
    SELECT DISTINCT p.user_id, p.played_at, p.played_ms, ta.artist_id,
           CASE WHEN ta.track_id IS NULL THEN p.artist_name END AS credited_name
    FROM counted_plays AS p
    LEFT JOIN track_artists_latest AS ta ON ta.track_id = p.track_id
    WHERE ta.track_id IS NOT NULL OR p.artist_name IS NOT NULL
)
-- An artist is its id, or its name when the id is unknown.
SELECT pc.artist_id, coalesce(a.name, pc.credited_name) AS artist_name,
       count(*) AS plays,
       round(CAST(sum(pc.played_ms) AS DOUBLE) / 60000.0, 2) AS minutes
FROM play_credits AS pc
LEFT JOIN artists_latest AS a ON a.artist_id = pc.artist_id
GROUP BY pc.artist_id, pc.credited_name, a.name
ORDER BY plays DESC, artist_name NULLS LAST, pc.artist_id NULLS LAST
LIMIT :limit
