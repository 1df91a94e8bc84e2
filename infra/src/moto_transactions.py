# moto's TransactWriteItems with each table backed up once (prepended to moto_serial.py, which
# calls back_up_each_table_once()).
#
# Before a transaction moto backs up the tables it writes, for a rollback, but it deep-copies a
# table once per item of the transaction: 100 puts to a table of 3,000 items took 14 s (0.2 s
# copied once), and on the serial server every other request waited behind it, past the SDK's
# timeouts. Nothing is written before that loop ends, so every copy is the same state: the first
# copy of a table stands for the rest. Rollback is unchanged.
import copy

import moto.dynamodb.models
from moto.dynamodb.models.table import Table


class _TablesCopiedOnce:
    """`copy` as moto.dynamodb.models uses it, copying each table at most once."""

    def __init__(self):
        self._tables = {}

    def deepcopy(self, value, memo=None):
        if not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) not in self._tables:
            self._tables[id(value)] = copy.deepcopy(value, memo)
        return self._tables[id(value)]


def back_up_each_table_once():
    backend = moto.dynamodb.models.DynamoDBBackend
    transact_write_items = backend.transact_write_items

    def transact_write_items_backing_up_once(self, transact_items):
        # The module's `copy` is swapped for this call only; the server serves one request at
        # a time, so no other request sees it.
        moto.dynamodb.models.copy = _TablesCopiedOnce()
        try:
            return transact_write_items(self, transact_items)
        finally:
            moto.dynamodb.models.copy = copy

    backend.transact_write_items = transact_write_items_backing_up_once
