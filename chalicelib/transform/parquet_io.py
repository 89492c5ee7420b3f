"""One curated Parquet file ↔ rows plus key-value metadata, always with the table's schema.

pyarrow is imported here only, so the Lambdas that never write Parquet start fast.
"""

from __future__ import annotations

import io

from chalicelib import tables
from chalicelib.tables import Table
from chalicelib.transform.objects import Row

METADATA_PREFIX = "spotify_etl."


def encode(table: Table, rows: list[Row], metadata: dict[str, str]) -> bytes:
    """Parquet bytes of `rows` with `tables.arrow_schema(table)`; equal inputs give equal bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = tables.arrow_schema(table).with_metadata(
        {METADATA_PREFIX + name: value for name, value in sorted(metadata.items())}
    )
    columns = [pa.array([row[field.name] for row in rows], type=field.type) for field in schema]
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(columns, schema=schema), sink, compression="snappy")
    return sink.getvalue()


def decode(data: bytes) -> tuple[list[Row], dict[str, str]]:
    """The rows of a curated file and the pipeline's metadata written with them."""
    import pyarrow.parquet as pq

    parquet = pq.read_table(io.BytesIO(data))
    metadata = {
        key.decode()[len(METADATA_PREFIX) :]: value.decode()
        for key, value in (parquet.schema.metadata or {}).items()
        if key.decode().startswith(METADATA_PREFIX)
    }
    return parquet.to_pylist(), metadata
