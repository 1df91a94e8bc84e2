"""Tests of infra/src/moto_transactions.py, which the moto server backs up its tables for a
TransactWriteItems with: each table copied once, and a cancelled transaction still rolled back.
Run by `make lint`: .venv/bin/python -m unittest discover -s infra -p 'test_*.py'
"""

from __future__ import annotations

import copy
import os
import sys
import unittest
from unittest import mock

import boto3
from moto import mock_aws
from moto.dynamodb.models.table import Table

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

import moto_transactions  # noqa: E402

moto_transactions.back_up_each_table_once()

TABLE = "listings"


def item(i: int) -> dict:
    return {"pk": {"S": f"listing#{i}"}, "sk": {"S": "state"}, "price": {"N": str(100_000 + i)}}


def key(i: int) -> dict:
    return {"pk": {"S": f"listing#{i}"}, "sk": {"S": "state"}}


def put(i: int, new: bool = True) -> dict:
    put = {"TableName": TABLE, "Item": item(i)}
    if new:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    return {"Put": put}


@mock_aws
class TransactWriteItems(unittest.TestCase):
    def setUp(self):
        self.ddb = boto3.client("dynamodb", region_name="us-east-1")
        self.ddb.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for first in range(0, 50, 25):
            self.ddb.batch_write_item(
                RequestItems={TABLE: [{"PutRequest": {"Item": item(i)}} for i in range(first, first + 25)]}
            )

    def exists(self, i: int) -> bool:
        return "Item" in self.ddb.get_item(TableName=TABLE, Key=key(i))

    def test_a_transaction_of_100_puts_copies_its_table_once(self):
        with mock.patch.object(copy, "deepcopy", wraps=copy.deepcopy) as deepcopy:
            self.ddb.transact_write_items(TransactItems=[put(100 + i) for i in range(100)])
        tables_copied = [c for c in deepcopy.call_args_list if isinstance(c.args[0], Table)]
        self.assertEqual(len(tables_copied), 1)
        self.assertTrue(all(self.exists(100 + i) for i in range(100)))

    def test_a_cancelled_transaction_leaves_the_table_as_it_was(self):
        changed = {"Put": {"TableName": TABLE, "Item": {**item(1), "price": {"N": "1"}}}}
        # The last put's condition fails (listing#0 exists): the first two must not land.
        with self.assertRaises(self.ddb.exceptions.TransactionCanceledException):
            self.ddb.transact_write_items(TransactItems=[put(200), changed, put(0)])
        self.assertFalse(self.exists(200))
        price = self.ddb.get_item(TableName=TABLE, Key=key(1))["Item"]["price"]["N"]
        self.assertEqual(price, str(100_001))

    def test_the_next_transaction_backs_up_the_table_as_it_is_then(self):
        self.ddb.transact_write_items(TransactItems=[put(300)])
        with self.assertRaises(self.ddb.exceptions.TransactionCanceledException):
            self.ddb.transact_write_items(TransactItems=[put(301), put(300)])
        self.assertTrue(self.exists(300))
        self.assertFalse(self.exists(301))


if __name__ == "__main__":
    unittest.main()
