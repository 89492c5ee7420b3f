-- Most played albums in a date range, with the credited artists of the album's tracks played in
-- the range. An album known by name only (a history export's row whose track has no known
-- album) has a null id and is told apart by its name and the play's artist name; plays with
-- neither an album id nor an album name (local files, tracks without an album) are left out.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays; all users when absent
-- @param limit int(1..1000)=10 Number of rows to return
WITH
-- The counted plays in range (contract §6): music plays (is_music) that Spotify counts as a
-- stream (is_stream); both are macros the translation step expands (translate.py). A play
-- lasts its ms_played, else its track's duration, else 0; an album's name falls back to the
-- play's own.
counted_plays AS (
    SELECT p.user_id, p.played_at, p.track_id, p.artist_name, t.album_id,
           coalesce(al.name, p.album_name) AS album_name,
           coalesce(p.ms_played, t.duration_ms, 0) AS played_ms
    FROM plays AS p
    LEFT JOIN tracks_latest AS t ON t.track_id = p.track_id
    LEFT JOIN albums_latest AS al ON al.album_id = t.album_id
    WHERE p.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
      AND (:user IS NULL OR p.user_id = :user)
      AND is_music(p.item_type) AND is_stream(p.ms_played)
),
-- Each play with its album's key: the id, or the name and the play's artist name.
album_plays AS (
    SELECT user_id, played_at, track_id, artist_name, album_id, album_name, played_ms,
           coalesce('id:' || album_id, 'name:' || album_name) AS album_key,
           CASE WHEN album_id IS NULL THEN artist_name END AS album_artist
    FROM counted_plays
    WHERE album_id IS NOT NULL OR album_name IS NOT NULL
),
-- Plays of one album id may disagree on the name an export gave: the least one stands for all.
album_totals AS (
    SELECT album_key, album_artist, album_id, min(album_name) AS album_name,
           count(*) AS plays,
           round(CAST(sum(played_ms) AS DOUBLE) / 60000.0, 2) AS minutes
    FROM album_plays
    GROUP BY album_key, album_artist, album_id
),
-- `artist_names`: the albums table carries no artists, so an album's artists are the credited
-- artists of its tracks played in the range — a track without credits has one, known by the
-- play's artist name — each once, ordered by the first (lowest) credit position it holds on
-- any of those tracks, then by name and id; joined with ", ". Artists without a known name are
-- left out, as in top_tracks.
album_credits AS (
    SELECT p.album_key, p.album_artist, ta.artist_id,
           CASE WHEN ta.track_id IS NULL THEN p.artist_name ELSE a.name END AS artist_name,
           min(coalesce(ta.artist_position, 1)) AS first_position
    FROM (
        SELECT DISTINCT album_key, album_artist, track_id, artist_name
        FROM album_plays
    ) AS p
    LEFT JOIN track_artists_latest AS ta ON ta.track_id = p.track_id
    LEFT JOIN artists_latest AS a ON a.artist_id = ta.artist_id
    GROUP BY p.album_key, p.album_artist, ta.artist_id,
             CASE WHEN ta.track_id IS NULL THEN p.artist_name ELSE a.name END
),
credited_names AS (
    SELECT album_key, album_artist,
           array_join(array_agg(artist_name ORDER BY first_position, artist_name, artist_id),
                      ', ') AS artist_names
    FROM album_credits
    WHERE artist_name IS NOT NULL
    GROUP BY album_key, album_artist
)
SELECT t.album_id, t.album_name, n.artist_names, t.plays, t.minutes
FROM album_totals AS t
LEFT JOIN credited_names AS n
    ON n.album_key = t.album_key
   AND coalesce(n.album_artist, '') = coalesce(t.album_artist, '')
ORDER BY t.plays DESC, t.album_name NULLS LAST, t.album_id NULLS LAST, n.artist_names NULLS LAST
LIMIT :limit
