"""Tests of infra/src/firehose_prefix.py, which the local emulators' Firehose writes its S3
keys with: the template's prefixes evaluate as AWS evaluates them. Run by `make lint`:
.venv/bin/python -m unittest discover -s infra -p 'test_*.py'
"""

from __future__ import annotations

import os
import re
import sys
import unittest
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

import firehose_prefix  # noqa: E402

WHEN = datetime(2026, 11, 24, 3, 4, 5, tzinfo=timezone.utc)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def template_prefixes():
    text = open(os.path.join(ROOT, "template.yaml"), encoding="utf-8").read()
    prefix = re.search(r'^\s+Prefix: "(listings/[^"]*)"', text, re.M).group(1)
    errors = re.search(r'^\s+ErrorOutputPrefix: "([^"]*)"', text, re.M).group(1)
    return prefix, errors


class EvaluatePrefix(unittest.TestCase):
    def test_the_templates_prefixes_are_partitioned_by_day(self):
        prefix, errors = template_prefixes()
        self.assertEqual(firehose_prefix.evaluate_prefix(prefix, WHEN), "listings/dt=2026-11-24/")
        self.assertEqual(
            firehose_prefix.evaluate_prefix(errors, WHEN, "processing-failed"),
            "errors/processing-failed/dt=2026-11-24/",
        )

    def test_a_prefix_without_a_timestamp_gets_the_hour_appended(self):
        self.assertEqual(firehose_prefix.evaluate_prefix("logs/", WHEN), "logs/2026/11/24/03/")
        self.assertEqual(firehose_prefix.evaluate_prefix("", WHEN), "2026/11/24/03/")
        self.assertEqual(firehose_prefix.evaluate_prefix("app", WHEN), "app2026/11/24/03/")

    def test_java_patterns_with_quoted_literals(self):
        self.assertEqual(
            firehose_prefix.evaluate_prefix("dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/", WHEN),
            "dt=2026-11-24/h=03/",
        )
        self.assertEqual(firehose_prefix.java_datetime("yy-MM-dd HH:mm:ss", WHEN), "26-11-24 03:04:05")

    def test_what_it_cannot_evaluate_is_refused(self):
        for prefix in ["!{timestamp:EEE}/", "!{partitionKeyFromQuery:id}/", "!{firehose:error-output-type}/"]:
            with self.assertRaises(ValueError, msg=prefix):
                firehose_prefix.evaluate_prefix(prefix, WHEN)

    def test_an_object_is_named_as_aws_names_it(self):
        key = firehose_prefix.object_key("listings/dt=!{timestamp:yyyy-MM-dd}/", WHEN, "s", 1)
        self.assertRegex(key, r"^listings/dt=2026-11-24/s-1-2026-11-24-03-04-05-[0-9a-f-]{36}$")


if __name__ == "__main__":
    unittest.main()
