-- Most played tracks in a date range, with their credited artists in credit order. A track
-- known by name only (a history export's row without a track id) has a null id and is told
-- apart by its name and the play's artist name; a play with neither id nor name (a local file
-- only the API saw) has no track to rank.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param limit int(1..1000)=10 Number of rows to return
WITH
-- The counted plays in range (contract §6): music plays (is_music) that Spotify counts as a
-- stream (is_stream); both are macros the translation step expands (translate.py). A play
-- lasts its ms_played, else its track's duration, else 0; a track's name falls back to the
-- play's own.
counted_plays AS (
    SELECT p.user_id, p.played_at, p.track_id,
           coalesce(t.name, p.track_name) AS track_name, p.artist_name,
           coalesce(p.ms_played, t.duration_ms, 0) AS played_ms
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
      AND is_music(p.item_type) AND is_stream(p.ms_played)
),
-- Plays of one track id may disagree on the names an export gave (or lack them): the least
-- one stands for all.
track_plays AS (
    SELECT track_id, min(track_name) AS track_name, min(artist_name) AS play_artist_name,
           count(*) AS plays,
           round(CAST(sum(played_ms) AS DOUBLE) / 60000.0, 2) AS minutes
    FROM counted_plays
    WHERE track_id IS NOT NULL OR track_name IS NOT NULL
    GROUP BY track_id,
             CASE WHEN track_id IS NULL THEN track_name END,
             CASE WHEN track_id IS NULL THEN artist_name END
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
SELECT tp.track_id, tp.track_name,
       CASE WHEN c.track_id IS NULL THEN tp.play_artist_name ELSE n.artist_names END
           AS artist_names,
       tp.plays, tp.minutes
FROM track_plays AS tp
LEFT JOIN credited_tracks AS c ON c.track_id = tp.track_id
LEFT JOIN credited_names AS n ON n.track_id = tp.track_id
ORDER BY tp.plays DESC, tp.track_name NULLS LAST, tp.track_id NULLS LAST, artist_names NULLS LAST
LIMIT :limit
