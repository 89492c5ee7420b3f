-- Most skipped tracks in a date range: of each track's music plays whose play time is known
-- (from a history export), those shorter than 30 s or that Spotify marked skipped. Only tracks
-- with at least 3 such plays; by skip rate, then plays. Tracks are told apart as in top_tracks.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param limit int(1..1000)=10 Number of rows to return
WITH
-- Music plays (is_music, a macro the translation step expands: translate.py) with a known
-- ms_played, short ones included: skips are what the counting rule leaves out. A play is
-- skipped when it is not a stream (is_stream: under 30 s) or the export says so; a null
-- `skipped` says nothing. A track's name falls back to the play's own.
music_plays AS (
    SELECT p.track_id, coalesce(t.name, p.track_name) AS track_name, p.artist_name,
           NOT is_stream(p.ms_played) OR coalesce(p.skipped, FALSE) AS is_skip
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
      AND is_music(p.item_type) AND p.ms_played IS NOT NULL
),
track_skips AS (
    SELECT track_id, min(track_name) AS track_name, min(artist_name) AS play_artist_name,
           count(*) AS plays,
           count(CASE WHEN is_skip THEN 1 END) AS skipped
    FROM music_plays
    WHERE track_id IS NOT NULL OR track_name IS NOT NULL
    GROUP BY track_id,
             CASE WHEN track_id IS NULL THEN track_name END,
             CASE WHEN track_id IS NULL THEN artist_name END
    HAVING count(*) >= 3
),
credited_tracks AS (
    SELECT DISTINCT track_id
    FROM track_artists_latest
),
-- Credited artists without a known name are left out of the names.
credited_names AS (
    SELECT ta.track_id,
           array_join(array_agg(a.name ORDER BY ta.artist_position), ', ') AS artist_names
    FROM track_artists_latest AS ta
    JOIN artists_latest AS a ON a.artist_id = ta.artist_id
    WHERE a.name IS NOT NULL
    GROUP BY ta.track_id
)
-- A track without credits in track_artists_latest has one: the play's artist name.
SELECT ts.track_id, ts.track_name,
       CASE WHEN c.track_id IS NULL THEN ts.play_artist_name ELSE n.artist_names END
           AS artist_names,
       ts.plays, ts.skipped,
       round(CAST(ts.skipped AS DOUBLE) / ts.plays, 4) AS skip_rate
FROM track_skips AS ts
LEFT JOIN credited_tracks AS c ON c.track_id = ts.track_id
LEFT JOIN credited_names AS n ON n.track_id = ts.track_id
ORDER BY skip_rate DESC, ts.plays DESC, ts.track_name NULLS LAST, ts.track_id NULLS LAST,
         artist_names NULLS LAST
LIMIT :limit
