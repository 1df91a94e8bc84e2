"""Tests of infra/check_iam.py on crafted templates: each grant it must refuse, the same grant
once explained, and the project's own template. Run by `make lint`:
.venv/bin/python -m unittest discover -s infra -p 'test_*.py'
"""

from __future__ import annotations

import copy
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import check_iam  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def template(resources: dict, parameters: dict | None = None) -> dict:
    t = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": 1}},
            **resources,
        },
    }
    if parameters:
        t["Parameters"] = parameters
    return t


def role(statements: list, metadata: dict | None = None, managed: list | None = None) -> dict:
    r = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": TRUST,
            "Policies": [
                {"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}
            ],
        },
    }
    if managed is not None:
        r["Properties"]["ManagedPolicyArns"] = managed
    if metadata is not None:
        r["Metadata"] = {"least-privilege": metadata}
    return r


def function(**props) -> dict:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {"CodeUri": ".", "Handler": "bootstrap", "Runtime": "provided.al2023", **props},
    }


READ_STREAM = {
    "Sid": "ReadStream",
    "Effect": "Allow",
    "Action": ["kinesis:GetRecords", "kinesis:GetShardIterator"],
    "Resource": {"Fn::GetAtt": ["Stream", "Arn"]},
}
TRACES = {
    "Sid": "WriteTraces",
    "Effect": "Allow",
    "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
    "Resource": "*",
}


def findings(t: dict) -> list[str]:
    return [str(f) for f in check_iam.check(check_iam.transform(copy.deepcopy(t)))]


class RefusesWhatSamAttaches(unittest.TestCase):
    def test_a_function_without_a_role_gets_managed_policies_with_star_resources(self):
        out = findings(template({"Fn": function()}))
        self.assertTrue(any("AWSLambdaBasicExecutionRole" in f for f in out), out)

    def test_each_trigger_and_tracing_adds_its_managed_policy(self):
        kinesis = {
            "Type": "Kinesis",
            "Properties": {"Stream": {"Fn::GetAtt": ["Stream", "Arn"]}, "StartingPosition": "LATEST"},
        }
        out = findings(template({"Fn": function(Tracing="Active", Events={"Records": kinesis})}))
        for policy in ("AWSLambdaKinesisExecutionRole", "AWSXrayWriteOnlyAccess", "AWSLambdaBasicExecutionRole"):
            self.assertTrue(any(policy in f for f in out), (policy, out))

    def test_sam_policy_templates_are_checked_after_expansion(self):
        fn = function(Policies=[{"KinesisStreamReadPolicy": {"StreamName": "*"}}])
        out = findings(template({"Fn": fn}))
        self.assertTrue(any("FnRole" in f and "every resource of a type" in f for f in out), out)

    def test_an_explained_aws_managed_policy_passes(self):
        arn = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
        r = role([READ_STREAM], {"managed-policies": {arn: "a reason"}}, managed=[arn])
        self.assertEqual(findings(template({"R": r})), [])

    def test_an_unexplained_aws_managed_policy_fails(self):
        r = role([READ_STREAM], managed=["arn:aws:iam::aws:policy/AdministratorAccess"])
        out = findings(template({"R": r}))
        self.assertEqual(len(out), 1, out)
        self.assertIn("AdministratorAccess", out[0])

    def test_a_managed_policy_defined_in_the_template_is_read_not_refused(self):
        policy = {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {"PolicyDocument": {"Version": "2012-10-17", "Statement": [TRACES]}},
        }
        r = role([READ_STREAM], managed=[{"Ref": "Traces"}])
        out = findings(template({"R": r, "Traces": policy}))
        self.assertEqual(len(out), 1, out)
        self.assertIn("Traces statement WriteTraces", out[0])


class RefusesUnexplainedWildcards(unittest.TestCase):
    def test_scoped_statements_pass(self):
        self.assertEqual(findings(template({"R": role([READ_STREAM])})), [])

    def test_star_resource_without_explanation_fails(self):
        out = findings(template({"R": role([READ_STREAM, TRACES])}))
        self.assertEqual(len(out), 1, out)
        self.assertIn('R statement WriteTraces: Resource "*"', out[0])

    def test_star_resource_without_a_sid_fails(self):
        statement = {k: v for k, v in TRACES.items() if k != "Sid"}
        out = findings(template({"R": role([statement], {"wildcards": {"WriteTraces": "why"}})}))
        self.assertTrue(any("no Sid" in f for f in out), out)

    def test_star_resource_explained_by_its_sid_passes(self):
        r = role([READ_STREAM, TRACES], {"wildcards": {"WriteTraces": "X-Ray has no resource ARNs"}})
        self.assertEqual(findings(template({"R": r})), [])

    def test_an_empty_explanation_is_no_explanation(self):
        r = role([TRACES], {"wildcards": {"WriteTraces": "  "}})
        self.assertEqual(len(findings(template({"R": r}))), 1)

    def test_an_explanation_no_statement_needs_fails(self):
        r = role([READ_STREAM], {"wildcards": {"ReadStream": "stale"}})
        out = findings(template({"R": r}))
        self.assertEqual(len(out), 1, out)
        self.assertIn("no statement needs it", out[0])

    def test_wildcard_action_fails(self):
        statement = dict(READ_STREAM, Action="kinesis:*")
        out = findings(template({"R": role([statement])}))
        self.assertEqual(len(out), 1, out)
        self.assertIn('wildcard action "kinesis:*"', out[0])

    def test_every_resource_of_a_type_fails(self):
        statement = dict(
            READ_STREAM,
            Resource={"Fn::Sub": "arn:${AWS::Partition}:kinesis:${AWS::Region}:${AWS::AccountId}:stream/*"},
        )
        out = findings(template({"R": role([statement])}))
        self.assertEqual(len(out), 1, out)
        self.assertIn("every resource of a type", out[0])

    def test_a_wildcard_name_fails_whatever_follows_it(self):
        for arn in [
            "arn:aws:s3:::*/*",
            {"Fn::Sub": "arn:${AWS::Partition}:s3:::*/*"},
            "arn:aws:s3:::*/reports/*",
            "arn:aws:logs:us-east-1:123456789012:log-group:*:*",
            "arn:aws:dynamodb:us-east-1:123456789012:table/*/stream/*",
            "arn:aws:dynamodb:us-east-1:123456789012:table/*/index/*",
        ]:
            with self.subTest(arn=arn):
                out = findings(template({"R": role([dict(READ_STREAM, Resource=arn)])}))
                self.assertEqual(len(out), 1, out)
                self.assertIn("every resource of a type", out[0])

    def test_a_named_resource_or_a_name_prefix_passes(self):
        for arn in [
            "arn:aws:s3:::my-bucket/*",
            {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/*"},
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/realty-*:*",
            "arn:aws:dynamodb:us-east-1:123456789012:table/realty-*",
            "arn:aws:dynamodb:us-east-1:123456789012:table/Markets/stream/*",
        ]:
            with self.subTest(arn=arn):
                out = findings(template({"R": role([dict(READ_STREAM, Resource=arn)])}))
                self.assertEqual(out, [])

    def test_not_action_and_not_resource_fail(self):
        statement = {"Sid": "Broad", "Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::x"}
        out = findings(template({"R": role([statement])}))
        self.assertEqual(len(out), 1, out)
        self.assertIn("NotAction", out[0])
        self.assertIn("NotResource", out[0])

    def test_a_star_inside_a_condition_branch_fails(self):
        conditional = {"Fn::If": ["Always", TRACES, {"Ref": "AWS::NoValue"}]}
        t = template({"R": role([READ_STREAM, conditional])})
        t["Conditions"] = {"Always": {"Fn::Equals": ["a", "a"]}}
        out = findings(t)
        self.assertEqual(len(out), 1, out)
        self.assertIn("WriteTraces", out[0])

    def test_a_parameter_that_may_be_star_fails_until_it_has_a_pattern(self):
        statement = {
            "Sid": "ReadSecret",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Ref": "SecretArn"},
        }
        loose = template({"R": role([statement])}, {"SecretArn": {"Type": "String"}})
        out = findings(loose)
        self.assertEqual(len(out), 1, out)
        self.assertIn("SecretArn", out[0])
        strict = template(
            {"R": role([statement])},
            {"SecretArn": {"Type": "String", "AllowedPattern": "^arn:aws:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$"}},
        )
        self.assertEqual(findings(strict), [])

    def test_resource_policies_allow_star_resource_but_not_star_principal(self):
        key_policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                 "Action": "kms:Decrypt", "Resource": "*"},
            ],
        }
        key = {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": key_policy}}
        self.assertEqual(findings(template({"Key": key})), [])
        open_key = copy.deepcopy(key)
        open_key["Properties"]["KeyPolicy"]["Statement"][0]["Principal"] = "*"
        out = findings(template({"Key": open_key}))
        self.assertEqual(len(out), 1, out)
        self.assertIn('Principal "*"', out[0])

    def test_a_secret_policy_is_read_as_a_resource_policy(self):
        def secret_policy(statement: dict) -> dict:
            return {
                "Type": "AWS::SecretsManager::ResourcePolicy",
                "Properties": {
                    "SecretId": "s",
                    "ResourcePolicy": {"Version": "2012-10-17", "Statement": [statement]},
                },
            }

        only_the_poller = {
            "Sid": "OnlyThePollerReads", "Effect": "Deny", "Principal": "*",
            "Action": "secretsmanager:GetSecretValue", "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:PrincipalArn": ["arn:aws:iam::123456789012:role/poller"]}},
        }
        self.assertEqual(findings(template({"P": secret_policy(only_the_poller)})), [])
        anyone = {"Sid": "Anyone", "Effect": "Allow", "Principal": "*",
                  "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
        out = findings(template({"P": secret_policy(anyone)}))
        self.assertEqual(len(out), 1, out)
        self.assertIn('Principal "*"', out[0])

    def test_deny_statements_may_be_broad(self):
        bucket_policy = {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": "b",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}],
                },
            },
        }
        self.assertEqual(findings(template({"P": bucket_policy})), [])


class TheProjectTemplate(unittest.TestCase):
    def test_is_clean_and_its_functions_have_no_managed_policies(self):
        transformed = check_iam.deployed(os.path.join(ROOT, "template.yaml"))
        self.assertEqual([str(f) for f in check_iam.check(transformed)], [])
        functions = {k: r for k, r in transformed["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
        # poller, metrics, alerts; the market API's data and public routes and its
        # authorizer; the S3 importer; the lake curator.
        self.assertEqual(len(functions), 8)
        for name, fn in functions.items():
            role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
            role_props = transformed["Resources"][role_id]["Properties"]
            self.assertNotIn("ManagedPolicyArns", role_props, name)

    def test_the_command_exits_non_zero_on_a_finding(self):
        import tempfile

        import yaml

        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(template({"Fn": function()}), f)
        try:
            self.assertEqual(check_iam.main([f.name]), 1)
        finally:
            os.unlink(f.name)
        self.assertEqual(check_iam.main([os.path.join(ROOT, "template.yaml")]), 0)

    def test_a_local_nested_application_is_checked_as_part_of_the_stack(self):
        import tempfile

        import yaml

        nested = {
            "Type": "AWS::Serverless::Application",
            "Properties": {"Location": "child.yaml", "Parameters": {"StreamArn": {"Fn::GetAtt": ["Stream", "Arn"]}}},
        }
        read_passed_stream = dict(READ_STREAM, Resource={"Ref": "StreamArn"})
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "parent.yaml"), "w") as f:
                yaml.safe_dump(template({"Nested": nested}), f)
            for statement, status in [(TRACES, 1), (read_passed_stream, 0)]:
                child = {
                    "Parameters": {"StreamArn": {"Type": "String"}},
                    "Resources": {"R": role([statement])},
                    "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["R", "Arn"]}}},
                }
                with open(os.path.join(d, "child.yaml"), "w") as f:
                    yaml.safe_dump(child, f)
                self.assertEqual(check_iam.main([os.path.join(d, "parent.yaml")]), status)
            stack = check_iam.deployed(os.path.join(d, "parent.yaml"))
            self.assertNotIn("Nested", stack["Resources"])
            granted = stack["Resources"]["R"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
            self.assertEqual(granted["Resource"], {"Fn::GetAtt": ["Stream", "Arn"]})


if __name__ == "__main__":
    unittest.main()
