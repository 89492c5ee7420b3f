-- New artists and tracks per month: those whose first counted play in the whole lake (by the
-- user, or by anyone when no user is given) falls in that month, and the month's counted plays
-- that credit an artist first heard that month. One row per month (UTC, `YYYY-MM`) with counted
-- plays in the range, by month.
--
-- @param start date required First played_date (UTC), inclusive
-- @param end date required Last played_date (UTC), inclusive
-- @param user string Only this user's plays (and first plays); all users when absent
WITH
-- Every counted play in the lake, not only those in range: "first heard" looks at all of
-- history. Counted (contract §6): music plays (is_music) that Spotify counts as a stream
-- (is_stream); both are macros the translation step expands (translate.py). A track is its
-- id, or, known by name only (an export row without a track id), its name and the play's
-- artist name.
counted_plays AS (
    SELECT p.user_id, p.played_at, p.played_date, p.track_id, p.artist_name,
           CASE WHEN p.track_id IS NULL THEN p.track_name END AS track_name,
           CASE WHEN p.track_id IS NULL AND p.track_name IS NOT NULL THEN p.artist_name END
               AS track_artist,
           substr(CAST(p.played_date AS VARCHAR), 1, 7) AS "month"
    FROM plays AS p
    WHERE (:user IS NULL OR p.user_id = :user)
      AND is_music(p.item_type) AND is_stream(p.ms_played)
),
-- A play's credited artists: its track's credits in track_artists_latest, each artist once; a
-- track without credits there has one, known by the play's artist_name only. An artist is its
-- id, or its name when the id is unknown ("id:" / "name:" keep the two apart).
play_credits AS (
    SELECT DISTINCT p.user_id, p.played_at, p.played_date, p."month",
           CASE WHEN ta.track_id IS NULL THEN 'name:' || p.artist_name
                ELSE 'id:' || ta.artist_id END AS artist_key
    FROM counted_plays AS p
    LEFT JOIN track_artists_latest AS ta ON ta.track_id = p.track_id
    WHERE ta.track_id IS NOT NULL OR p.artist_name IS NOT NULL
),
-- The month of each artist's and track's first counted play (min of played_date: its month is
-- the month of the earliest play).
artist_first AS (
    SELECT artist_key, substr(CAST(min(played_date) AS VARCHAR), 1, 7) AS first_month
    FROM play_credits
    GROUP BY artist_key
),
track_first AS (
    SELECT substr(CAST(min(played_date) AS VARCHAR), 1, 7) AS first_month
    FROM counted_plays
    WHERE track_id IS NOT NULL OR track_name IS NOT NULL
    GROUP BY track_id, track_name, track_artist
),
-- The months of the range that have counted plays. A month only partly inside the range
-- still counts every artist and track first heard in it (the contract's "falls in that
-- month"); plays_of_new counts the month's plays inside the range only.
months AS (
    SELECT DISTINCT "month"
    FROM counted_plays
    WHERE played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
),
new_artists AS (
    SELECT first_month, count(*) AS new_artists
    FROM artist_first
    GROUP BY first_month
),
new_tracks AS (
    SELECT first_month, count(*) AS new_tracks
    FROM track_first
    GROUP BY first_month
),
-- (user_id, played_at) identifies a play: DISTINCT counts a play once however many of its
-- artists are new.
plays_of_new AS (
    SELECT "month", count(*) AS plays_of_new
    FROM (
        SELECT DISTINCT pc.user_id, pc.played_at, pc."month"
        FROM play_credits AS pc
        JOIN artist_first AS af ON af.artist_key = pc.artist_key
        WHERE pc.played_date BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)
          AND af.first_month = pc."month"
    ) AS new_plays
    GROUP BY "month"
)
SELECT m."month",
       coalesce(na.new_artists, 0) AS new_artists,
       coalesce(nt.new_tracks, 0) AS new_tracks,
       coalesce(pn.plays_of_new, 0) AS plays_of_new
FROM months AS m
LEFT JOIN new_artists AS na ON na.first_month = m."month"
LEFT JOIN new_tracks AS nt ON nt.first_month = m."month"
LEFT JOIN plays_of_new AS pn ON pn."month" = m."month"
ORDER BY m."month"
