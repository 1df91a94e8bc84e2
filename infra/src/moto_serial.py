# moto server, handling one request at a time.
#
# moto's backends are not thread-safe: Kinesis and DynamoDB Streams number a new record
# "highest so far + 1" without a lock, so two concurrent writes to a shard can take the same
# sequence number. Kinesis then keeps one record and silently drops the other; a table's
# stream hands the second one out again and again. Real AWS orders each shard. Serving one
# request at a time gives the emulator the same guarantee at little cost: moto holds the GIL
# for nearly all of a request anyway. Connections are still accepted by several threads.
#
# Its Firehose also writes under the S3 prefix AWS would (firehose_prefix.py, prepended to
# this script: object_key), not the configured prefix taken literally, and its
# TransactWriteItems backs each table up once (moto_transactions.py, prepended too).
import sys
import threading
from datetime import datetime, timezone

import moto.firehose.models
import moto.server


def _firehose_object_path(delivery_stream_name, version_id, prefix):
    return object_key(prefix, datetime.now(timezone.utc), delivery_stream_name, version_id)


moto.firehose.models.FirehoseBackend._format_s3_object_path = staticmethod(_firehose_object_path)

_one_at_a_time = threading.Lock()
_run_simple = moto.server.run_simple


def _serial(app):
    def handle(environ, start_response):
        with _one_at_a_time:
            # The whole body is built inside the lock: a WSGI app may produce it lazily.
            body = app(environ, start_response)
            try:
                return list(body)
            finally:
                if hasattr(body, "close"):
                    body.close()

    return handle


def _run_simple_serial(hostname, port, application, **options):
    _run_simple(hostname, port, _serial(application), **options)


# --- Glue UpdateTable honours VersionId (begin) ---
# moto ignores UpdateTable's VersionId, so two overlapping Iceberg commits would both land and
# the later one silently drop the other's snapshot. Glue compares it with the table's current
# version and refuses a stale one; no VersionId means an unconditional update, as on AWS.
from moto.glue.exceptions import GlueClientError
from moto.glue.responses import GlueResponse

_update_table = GlueResponse.update_table


class _ConcurrentModification(GlueClientError):
    def __init__(self, table):
        super().__init__(
            "ConcurrentModificationException",
            f"Update table failed due to concurrent modifications of {table}.",
        )


def _update_table_checked(self):
    expected = self.parameters.get("VersionId")
    if expected is not None:
        database = self.parameters.get("DatabaseName")
        name = (self.parameters.get("TableInput") or {}).get("Name")
        table = self.glue_backend.get_table(database, name)
        if str(expected) != str(table._current_version):
            raise _ConcurrentModification(f"{database}.{name}")
    return _update_table(self)


GlueResponse.update_table = _update_table_checked
# --- Glue UpdateTable honours VersionId (end) ---


back_up_each_table_once()
moto.server.run_simple = _run_simple_serial
moto.server.main(sys.argv[1:])
