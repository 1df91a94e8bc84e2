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

# --- The gateway on the loopback interface only (begin) ---
# LocalStack's twisted server binds every interface whatever host GATEWAY_LISTEN names (a
# TODO of its own): the stack's secrets, tables and buckets, under any credentials, to anyone
# on the network. Its IPv4 endpoints bind the address they are given, 127.0.0.1 by default.
import types

import localstack.runtime.server.twisted as twisted_server
from twisted.internet import endpoints as twisted_endpoints


def _tcp4_on_loopback(reactor, port, backlog=50, interface=""):
    return twisted_endpoints.TCP4ServerEndpoint(reactor, port, backlog, interface or "127.0.0.1")


twisted_server.endpoints = types.SimpleNamespace(
    TCP4ServerEndpoint=_tcp4_on_loopback,
    TCP6ServerEndpoint=twisted_endpoints.TCP6ServerEndpoint,
)
# --- The gateway on the loopback interface only (end) ---

# --- Glue served by the bundled moto (begin) ---
# LocalStack's free edition has no Glue provider, but the moto it bundles has Glue. Register
# one, as LocalStack does for its own moto-backed services: every operation falls through to
# moto, and UpdateTable first checks VersionId as Glue does (a stale one is refused with
# ConcurrentModificationException; no VersionId updates unconditionally). The lock makes the
# check and the update one step: LocalStack serves requests on several threads.
import threading

from localstack.aws.api import CommonServiceException
from localstack.aws.spec import load_service
from localstack.services.moto import call_moto
from localstack.services.plugins import SERVICE_PLUGINS, Service, aws_provider


class _GlueOnMoto:
    service = "glue"


_glue_update_lock = threading.Lock()


def _glue_by_moto(context, _request):
    return call_moto(context)


def _glue_update_table(context, request):
    from moto.glue.models import glue_backends

    with _glue_update_lock:
        expected = request.get("VersionId")
        if expected is not None:
            database = request.get("DatabaseName")
            name = (request.get("TableInput") or {}).get("Name")
            backend = glue_backends[context.account_id][context.region]
            table = backend.databases.get(database, None)
            table = table.tables.get(name) if table is not None else None
            # A missing database or table: moto answers with the right error below.
            if table is not None and str(expected) != str(table._current_version):
                raise CommonServiceException(
                    "ConcurrentModificationException",
                    f"Update table failed due to concurrent modifications of {database}.{name}.",
                )
        return call_moto(context)


def _glue_create_table(context, _request):
    # moto checks that the table is new, then adds it: two threads may both pass the check
    # and the second overwrite the first (and a commit made in between). Glue's CreateTable
    # is atomic: one of two racing creators gets AlreadyExistsException.
    with _glue_update_lock:
        return call_moto(context)


def _glue_dispatch_table(_provider):
    table = {op: _glue_by_moto for op in load_service("glue").operation_names}
    table["UpdateTable"] = _glue_update_table
    table["CreateTable"] = _glue_create_table
    return table


@aws_provider(api="glue")
def _glue_provider():
    return Service.for_provider(_GlueOnMoto(), dispatch_table_factory=_glue_dispatch_table)


class _FinderWithGlue:
    def __init__(self, finder):
        self._finder = finder

    def find_plugins(self):
        return [*self._finder.find_plugins(), _glue_provider]


SERVICE_PLUGINS.plugin_manager.finder = _FinderWithGlue(SERVICE_PLUGINS.plugin_manager.finder)
# --- Glue served by the bundled moto (end) ---


def _firehose_object_path(self, stream_name, prefix, file_extension):
    return object_key(prefix, datetime.now(timezone.utc), stream_name) + (file_extension or "")


firehose_provider.FirehoseProvider._get_s3_object_path = _firehose_object_path
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
