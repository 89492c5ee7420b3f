"""One curated Parquet file ↔ rows plus key-value metadata, always with the table's schema.

pyarrow is imported here only, so the Lambdas that never write Parquet start fast.
"""

from __future__ import annotations

import io
import operator
from datetime import UTC
from typing import TYPE_CHECKING, Any

from chalicelib import tables
from chalicelib.tables import Table
from chalicelib.transform.objects import Row

if TYPE_CHECKING:
    import pyarrow as pa

METADATA_PREFIX = "spotify_etl."


def encode(table: Table, rows: list[Row], metadata: dict[str, str]) -> bytes:
    """Parquet bytes of `rows` with `tables.arrow_schema(table)`; equal inputs give equal bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = tables.arrow_schema(table).with_metadata(
        {METADATA_PREFIX + name: value for name, value in sorted(metadata.items())}
    )
    # `itemgetter` in `map` gathers a column in C: this runs for every row of every file written.
    columns = [
        pa.array(list(map(operator.itemgetter(field.name), rows)), type=field.type)
        for field in schema
    ]
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(columns, schema=schema), sink, compression="snappy")
    return sink.getvalue()


def decode(data: bytes) -> tuple[list[Row], dict[str, str]]:
    """The rows of a curated file and the pipeline's metadata written with them."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(io.BytesIO(data)).read()
    metadata = {
        key.decode()[len(METADATA_PREFIX) :]: value.decode()
        for key, value in (parquet.schema.metadata or {}).items()
        if key.decode().startswith(METADATA_PREFIX)
    }
    names = parquet.column_names
    columns = zip(*(python_values(column) for column in parquet.columns), strict=True)
    return [dict(zip(names, values, strict=True)) for values in columns], metadata


def python_values(column: pa.ChunkedArray) -> list[Any]:
    """`column.to_pylist()`, faster: Arrow converts value by value, the costliest step of a
    partition file's read-modify-write. Where numpy gives the same Python values (text, flags,
    integers without nulls; timestamps but for the time zone, put back as UTC) it converts."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind) and kind.tz == "UTC" and kind.unit == "ms":
        naive = column.to_numpy(zero_copy_only=False).tolist()
        return [None if moment is None else moment.replace(tzinfo=UTC) for moment in naive]
    if (
        pa.types.is_string(kind)
        or pa.types.is_boolean(kind)
        or (pa.types.is_integer(kind) and column.null_count == 0)
    ):
        return column.to_numpy(zero_copy_only=False).tolist()
    return column.to_pylist()
