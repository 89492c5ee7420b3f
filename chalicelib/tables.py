"""The curated tables (contract §4), defined once.

The transform writes Parquet with `arrow_schema()`, bootstrap registers Glue tables with
`glue_columns()`, the local query engine builds empty typed views from the same definitions, and
the tests compare against them. Types are logical names mapped to Arrow and Glue here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyarrow is heavy: imported only where Parquet is written or read
    import pyarrow as pa

GLUE_TYPES = {
    "string": "string",
    "int": "int",
    "bigint": "bigint",
    "boolean": "boolean",
    "timestamp": "timestamp",
    "date": "date",
    "array<string>": "array<string>",
}

DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "array<string>": "VARCHAR[]",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Table:
    name: str
    partition: Column
    columns: tuple[Column, ...]
    # The columns that identify a row within one partition (contract §4, "one row per").
    key: tuple[str, ...]
    # True for tables with a `user_id`: curated files are kept one per user and partition.
    per_user: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """Data columns then the partition column, as Athena and DuckDB show them."""
        return (*self.columns, self.partition)


def _cols(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(name, type_) for name, type_ in pairs)


SNAPSHOT_DATE = Column("snapshot_date", "date")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "plays",
            Column("played_date", "date"),
            _cols(
                ("user_id", "string"),
                ("played_at", "timestamp"),
                ("track_id", "string"),
                ("context_type", "string"),
                ("context_uri", "string"),
                # From a history export (contract §8); null for plays only the API saw.
                ("source", "string"),
                ("item_type", "string"),
                ("episode_id", "string"),
                ("ms_played", "bigint"),
                ("reason_start", "string"),
                ("reason_end", "string"),
                ("skipped", "boolean"),
                ("shuffle", "boolean"),
                ("offline", "boolean"),
                ("incognito", "boolean"),
                ("platform", "string"),
                ("conn_country", "string"),
                ("track_name", "string"),
                ("artist_name", "string"),
                ("album_name", "string"),
                ("episode_name", "string"),
                ("show_name", "string"),
            ),
            key=("user_id", "played_at"),
        ),
        Table(
            "history_gaps",
            Column("detected_date", "date"),
            _cols(
                ("user_id", "string"),
                ("gap_from", "timestamp"),
                ("gap_to", "timestamp"),
                ("run_id", "string"),
            ),
            key=("user_id", "gap_from", "gap_to"),
        ),
        Table(
            "imports",
            Column("import_date", "date"),
            _cols(
                ("user_id", "string"),
                ("import_id", "string"),
                ("file_name", "string"),
                ("format", "string"),
                ("rows", "int"),
                ("first_ts", "timestamp"),
                ("last_ts", "timestamp"),
            ),
            key=("user_id", "import_id", "file_name"),
        ),
        Table(
            "playlists",
            SNAPSHOT_DATE,
            _cols(
                ("user_id", "string"),
                ("playlist_id", "string"),
                ("name", "string"),
                ("owner_id", "string"),
                ("collaborative", "boolean"),
                ("public", "boolean"),
                ("snapshot_id", "string"),
                ("item_count", "int"),
                ("items_readable", "boolean"),
            ),
            key=("user_id", "playlist_id"),
        ),
        Table(
            "playlist_items",
            SNAPSHOT_DATE,
            _cols(
                ("user_id", "string"),
                ("playlist_id", "string"),
                ("position", "int"),
                ("item_type", "string"),
                ("item_id", "string"),
                ("item_name", "string"),
                ("added_at", "timestamp"),
                ("added_by", "string"),
            ),
            key=("user_id", "playlist_id", "position"),
        ),
        Table(
            "top_items",
            SNAPSHOT_DATE,
            _cols(
                ("user_id", "string"),
                ("item_type", "string"),
                ("time_range", "string"),
                ("rank", "int"),
                ("item_id", "string"),
            ),
            key=("user_id", "item_type", "time_range", "rank"),
        ),
        Table(
            "saved_tracks",
            SNAPSHOT_DATE,
            _cols(("user_id", "string"), ("track_id", "string"), ("added_at", "timestamp")),
            key=("user_id", "track_id", "added_at"),
        ),
        Table(
            "tracks",
            SNAPSHOT_DATE,
            _cols(
                ("track_id", "string"),
                ("name", "string"),
                ("album_id", "string"),
                ("duration_ms", "bigint"),
                ("explicit", "boolean"),
                ("isrc", "string"),
                ("disc_number", "int"),
                ("track_number", "int"),
            ),
            key=("track_id",),
            per_user=False,
        ),
        Table(
            "track_artists",
            SNAPSHOT_DATE,
            _cols(("track_id", "string"), ("artist_id", "string"), ("artist_position", "int")),
            key=("track_id", "artist_position"),
            per_user=False,
        ),
        Table(
            "albums",
            SNAPSHOT_DATE,
            _cols(
                ("album_id", "string"),
                ("name", "string"),
                ("album_type", "string"),
                ("release_date", "string"),
                ("release_date_precision", "string"),
                ("release_year", "int"),
                ("total_tracks", "int"),
            ),
            key=("album_id",),
            per_user=False,
        ),
        Table(
            "artists",
            SNAPSHOT_DATE,
            _cols(("artist_id", "string"), ("name", "string"), ("genres", "array<string>")),
            key=("artist_id",),
            per_user=False,
        ),
    )
}

# Dimension views (contract §4): for each id, its row from the latest partition holding it.
LATEST_VIEWS = ("tracks_latest", "albums_latest", "artists_latest", "track_artists_latest")


def arrow_type(logical: str) -> pa.DataType:
    import pyarrow as pa

    return {
        "string": pa.string(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("ms", tz="UTC"),
        "date": pa.date32(),
        "array<string>": pa.list_(pa.string()),
    }[logical]


def arrow_schema(table: Table) -> pa.Schema:
    """The schema every Parquet file of `table` is written with (partition column excluded:
    it lives in the Hive path)."""
    import pyarrow as pa

    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in table.columns])


def glue_columns(table: Table) -> list[dict[str, str]]:
    """Glue `StorageDescriptor.Columns` for `table` (partition key excluded)."""
    return [{"Name": c.name, "Type": GLUE_TYPES[c.type]} for c in table.columns]


def glue_partition_keys(table: Table) -> list[dict[str, str]]:
    return [{"Name": table.partition.name, "Type": GLUE_TYPES[table.partition.type]}]
