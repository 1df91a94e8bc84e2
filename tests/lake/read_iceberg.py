"""The tests' independent reader of the lake's Iceberg tables: pyiceberg with its Glue catalog.

Run from the venv of tests/lake/requirements.txt (tests/src/lake_reader.rs installs it).

    read_iceberg.py read  --endpoint URL --region R --database DB --table T [--snapshot-id N]
    read_iceberg.py write --endpoint URL --region R --database DB --table T --location S3URL \
        --rows FILE

`read` prints one JSON document: the table's schema (fields with id, name, type, required),
its snapshots (oldest first), the current snapshot id, the snapshot read, and its rows.
`write` appends the rows of FILE (JSON lines: event_id, price_minor, observed_at as
ISO-8601) to a small table it creates if missing (partitioned by day of observed_at), as one
snapshot, and prints {"snapshot_id": N}: a table made by pyiceberg itself, so the reader is
proven on a table no code of ours wrote.
"""

import argparse
import datetime
import json
import sys

import pyarrow as pa
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

# Bounds: the reader is for test-sized tables; more than this is a mistake, not a read.
MAX_ROWS = 200_000
MAX_INPUT_LINE = 64 * 1024

SAMPLE_SCHEMA = Schema(
    NestedField(1, "event_id", StringType(), required=True),
    NestedField(2, "price_minor", LongType(), required=False),
    NestedField(3, "observed_at", TimestamptzType(), required=True),
)
SAMPLE_SPEC = PartitionSpec(
    PartitionField(source_id=3, field_id=1000, transform=DayTransform(), name="observed_day")
)


def catalog(args):
    # Both emulators serve S3 on the Glue endpoint; AWS needs neither override.
    s3_endpoint = args.s3_endpoint or args.endpoint
    props = {
        "type": "glue",
        "glue.region": args.region,
        "s3.region": args.region,
    }
    if args.endpoint:
        props.update(
            {
                "glue.endpoint": args.endpoint,
                "glue.access-key-id": "test",
                "glue.secret-access-key": "test",
            }
        )
    if s3_endpoint:
        props.update(
            {
                "s3.endpoint": s3_endpoint,
                "s3.access-key-id": "test",
                "s3.secret-access-key": "test",
                "s3.force-virtual-addressing": "false",
            }
        )
    return load_catalog("lake", **props)


def plain(value):
    """JSON for what pyarrow hands back (timestamps, dates, decimals, bytes)."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def read(args):
    table = catalog(args).load_table((args.database, args.table))
    current = table.current_snapshot()
    snapshot_id = args.snapshot_id
    if snapshot_id is not None and table.snapshot_by_id(snapshot_id) is None:
        raise SystemExit(f"{args.database}.{args.table} has no snapshot {snapshot_id}")
    if snapshot_id is None and current is not None:
        snapshot_id = current.snapshot_id
    # A table with no snapshot yet has no rows.
    rows = (
        table.scan(snapshot_id=snapshot_id, limit=MAX_ROWS + 1).to_arrow().to_pylist()
        if snapshot_id is not None
        else []
    )
    if len(rows) > MAX_ROWS:
        raise SystemExit(f"{args.database}.{args.table} has more than {MAX_ROWS} rows")
    document = {
        "metadata_location": table.metadata_location,
        "schema": [
            {
                "id": field.field_id,
                "name": field.name,
                "type": str(field.field_type),
                "required": field.required,
            }
            for field in table.schema().fields
        ],
        "snapshots": [
            {
                "snapshot_id": s.snapshot_id,
                "parent_snapshot_id": s.parent_snapshot_id,
                "timestamp_ms": s.timestamp_ms,
                "operation": s.summary.operation.value if s.summary else None,
                "summary": dict(s.summary.additional_properties) if s.summary else {},
            }
            for s in sorted(table.snapshots(), key=lambda s: s.sequence_number or 0)
        ],
        "current_snapshot_id": current.snapshot_id if current else None,
        "snapshot_id": snapshot_id,
        "rows": rows,
    }
    json.dump(document, sys.stdout, default=plain)
    sys.stdout.write("\n")


def write(args):
    rows = []
    with open(args.rows, encoding="utf-8") as lines:
        lines = list(lines)
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_INPUT_LINE or number > MAX_ROWS:
            raise SystemExit(f"input line {number}: too long or too many lines")
        if not line.strip():
            continue
        row = json.loads(line)
        rows.append(
            {
                "event_id": str(row["event_id"]),
                "price_minor": row.get("price_minor"),
                "observed_at": datetime.datetime.fromisoformat(row["observed_at"]),
            }
        )
    lake = catalog(args)
    try:
        table = lake.load_table((args.database, args.table))
    except NoSuchTableError:
        table = lake.create_table(
            (args.database, args.table),
            schema=SAMPLE_SCHEMA,
            partition_spec=SAMPLE_SPEC,
            location=args.location,
        )
    batch = pa.Table.from_pylist(rows, schema=table.schema().as_arrow())
    table.append(batch)
    json.dump({"snapshot_id": table.current_snapshot().snapshot_id}, sys.stdout)
    sys.stdout.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["read", "write"])
    parser.add_argument("--endpoint", help="Glue endpoint (the emulator's); none for AWS")
    parser.add_argument("--s3-endpoint", help="S3 endpoint, when not the Glue one")
    parser.add_argument("--region", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--snapshot-id", type=int)
    parser.add_argument("--location", help="write: the new table's s3:// location")
    parser.add_argument("--rows", help="write: the rows, a file of JSON lines")
    args = parser.parse_args()
    if args.mode == "read":
        read(args)
    else:
        if not args.location or not args.rows:
            parser.error("write needs --location and --rows")
        write(args)


if __name__ == "__main__":
    main()
