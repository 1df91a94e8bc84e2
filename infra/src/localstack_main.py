# LocalStack's runtime, with every file it writes under the instance's folder.
#
# Its S3 keeps object data in a fixed /tmp/localstack-s3-storage, outside the project and
# shared by every LocalStack on the machine; everything else follows FILESYSTEM_ROOT and
# TMPDIR. Point S3 at the instance's temporary folder (TMPDIR) before the runtime starts.
#
# Its Firehose also writes under the S3 prefix AWS would (firehose_prefix.py, prepended to
# this script: object_key), not the configured prefix taken literally.
import os
import runpy
import tempfile
from datetime import datetime, timezone

import localstack.services.firehose.provider as firehose_provider
import localstack.services.s3.provider as s3_provider

s3_provider.DEFAULT_S3_TMP_DIR = os.path.join(tempfile.gettempdir(), "localstack-s3-storage")


def _firehose_object_path(self, stream_name, prefix, file_extension):
    return object_key(prefix, datetime.now(timezone.utc), stream_name) + (file_extension or "")


firehose_provider.FirehoseProvider._get_s3_object_path = _firehose_object_path
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
