# LocalStack's runtime, with every file it writes under the instance's folder.
#
# Its S3 keeps object data in a fixed /tmp/localstack-s3-storage, outside the project and
# shared by every LocalStack on the machine; everything else follows FILESYSTEM_ROOT and
# TMPDIR. Point S3 at the instance's temporary folder (TMPDIR) before the runtime starts.
import os
import runpy
import tempfile

import localstack.services.s3.provider as s3_provider

s3_provider.DEFAULT_S3_TMP_DIR = os.path.join(tempfile.gettempdir(), "localstack-s3-storage")
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
