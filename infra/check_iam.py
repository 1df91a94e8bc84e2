"""Least privilege as deployed: expands template.yaml with the SAM translator (the transform
CloudFormation runs) and fails on any grant the template does not explain.

checkov and cfn-lint read the template before the transform, so they never see what SAM adds
(AWS-managed policies such as AWSLambdaKinesisExecutionRole, which grant on every stream).
This check reads the transformed template and reports:

- an Allow statement of an identity policy (a role's, or an AWS::IAM::Policy's or
  ManagedPolicy's) whose Resource is "*" or a whole resource type ("table/*"), or any Allow
  statement whose Action has a wildcard ("s3:*", "kms:ReEncrypt*"), or that uses
  NotAction / NotResource, or that allows Principal "*";
- a resource given by a parameter that could be "*" (no AllowedPattern ruling it out);
- a managed policy attached to a role that is not defined in the template (an AWS-managed
  one such as AWSLambdaBasicExecutionRole: its content cannot be checked here);

unless the resource holding the statement explains it in its Metadata:

    Metadata:
      least-privilege:
        wildcards:            # statement Sid -> why the wildcard is needed
          XRayWriteTraces: X-Ray's PutTraceSegments supports no resource-level permission.
        managed-policies:     # policy ARN (as written after the transform) -> why
          arn:aws:iam::aws:policy/...: ...

An explanation no statement needs is reported too, so the reasons stay true. Key policies
(AWS::KMS::Key) always name their key as Resource "*": only their actions and principals are
checked.

A local nested application (an AWS::Serverless::Application whose Location is a file, which
`sam build` and `sam deploy` package: monitoring.yaml) is checked as part of the stack: its
template, transformed too, takes its place, its parameters bound to what the stack passes
(so a grant on a name the stack passes is read as that resource's) and the stack's
`Fn::GetAtt App.Outputs.Name` to the output's value. `--transformed` writes that whole view.

Usage: python infra/check_iam.py template.yaml [--transformed OUT.json]
Exit status 0 when clean, 1 with one line per finding, 2 when the template cannot be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterator

METADATA_KEY = "least-privilege"
IDENTITY_POLICY_TYPES = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}
# Resource policies: their Resource is the resource itself (a key policy's "*" is its key).
RESOURCE_POLICY_PROPERTIES = {
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::SecretsManager::ResourcePolicy": "ResourcePolicy",
}
# A local CodeUri (what `sam build` packages) is not an S3 URI; the translator needs one.
PLACEHOLDER_CODE_URI = "s3://placeholder-bucket/code.zip"
# The resource's name in an ARN is a wildcard, whatever follows it: "*", "table/*",
# "log-group:*", "log-group:*:*", "table/*/stream/*"; S3's ARNs name no type, so there it is
# the bucket: "*/*" (every bucket's objects).
WHOLE_TYPE = re.compile(
    r"^arn:[^:]*:(?:s3:::|(?!s3:)[^:]*:[^:]*:[^:]*:(?:[A-Za-z0-9_-]+[/:])?)\*(?:[/:].*)?$"
)


@dataclass(frozen=True)
class Finding:
    resource: str
    sid: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.resource} statement {self.sid}" if self.sid else self.resource
        return f"{where}: {self.reason}"


def load_template(path: str) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    with open(path, encoding="utf-8") as f:
        return yaml_parse(f.read())


def local_applications(path: str, template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> file of each local nested application of the template at `path`."""
    found = {}
    for logical_id, resource in template.get("Resources", {}).items():
        location = (resource.get("Properties") or {}).get("Location")
        if (
            resource.get("Type") == "AWS::Serverless::Application"
            and isinstance(location, str)
            and not location.startswith(("s3://", "https://"))
        ):
            found[logical_id] = os.path.join(os.path.dirname(path), location)
    return found


def nested_templates(path: str, template: dict[str, Any]) -> list[str]:
    """The files of the template's local nested applications, as paths beside `path`."""
    return list(local_applications(path, template).values())


def bind(value: Any, bindings: dict[str, Any]) -> Any:
    """`value` with each Ref to a bound parameter replaced by its value, and each ${Name} of an
    Fn::Sub given the value as a variable of its own."""
    if isinstance(value, list):
        return [bind(v, bindings) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in bindings:
        return bindings[value["Ref"]]
    if set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], bind(sub[1], bindings))
        for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
            if name in bindings and name not in variables:
                variables[name] = bindings[name]
        return {"Fn::Sub": [text, variables] if variables else text}
    return {k: bind(v, bindings) for k, v in value.items()}


def with_outputs(value: Any, logical_id: str, outputs: dict[str, Any]) -> Any:
    """`value` with each Fn::GetAtt of `logical_id`'s output replaced by the output's value."""
    if isinstance(value, list):
        return [with_outputs(v, logical_id, outputs) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        parts = target.split(".", 1) if isinstance(target, str) else target
        if parts[0] == logical_id and str(parts[1]).startswith("Outputs."):
            return outputs[parts[1].removeprefix("Outputs.")]
    return {k: with_outputs(v, logical_id, outputs) for k, v in value.items()}


def deployed(path: str) -> dict[str, Any]:
    """The template at `path` as CloudFormation deploys it: transformed, each local nested
    application's template (deployed the same way) in its place."""
    template = load_template(path)
    stack = transform(template)
    for logical_id, child_path in local_applications(path, template).items():
        child = deployed(child_path)
        passed = stack["Resources"].pop(logical_id)["Properties"].get("Parameters", {})
        bindings = {
            name: passed[name] if name in passed else spec["Default"]
            for name, spec in child.get("Parameters", {}).items()
        }
        for section in ("Resources", "Conditions"):
            for name, value in child.get(section, {}).items():
                if name in stack.get("Resources", {}) or name in stack.get(section, {}):
                    raise ValueError(f"{child_path}: {name} is a name of the stack's too")
                stack.setdefault(section, {})[name] = bind(value, bindings)
        outputs = {name: bind(o["Value"], bindings) for name, o in child.get("Outputs", {}).items()}
        for section in ("Resources", "Outputs"):
            stack[section] = with_outputs(stack.get(section, {}), logical_id, outputs)
    return stack


def transform(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation deploys it (the SAM transform applied)."""
    # The translator asks boto3 for the partition; no call is made.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # The translator's usage metrics go nowhere here; their "unpublished" warning is noise.
    logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)
    from samtranslator.translator.transform import transform as sam_transform

    template = json.loads(json.dumps(template))
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(
            props.get("CodeUri"), str
        ):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = PLACEHOLDER_CODE_URI

    class NoManagedPolicyNames:
        """Policy names (not ARNs) in a function's Policies would need IAM to resolve:
        none resolves, so the translator reports them."""

        def load(self) -> dict[str, str]:
            return {}

    return sam_transform(template, {}, NoManagedPolicyNames())


def branches(value: Any) -> Iterator[Any]:
    """Every value `value` can take: both sides of an Fn::If, never AWS::NoValue."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        args = value["Fn::If"]
        if isinstance(args, list) and len(args) == 3:
            yield from branches(args[1])
            yield from branches(args[2])
            return
    if isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
        return
    yield value


def as_list(value: Any) -> list[Any]:
    out: list[Any] = []
    for v in branches(value):
        if isinstance(v, list):
            for item in v:
                out.extend(branches(item))
        else:
            out.append(v)
    return out


def statements(document: Any) -> Iterator[dict[str, Any]]:
    for doc in branches(document):
        if isinstance(doc, dict):
            for statement in as_list(doc.get("Statement", [])):
                if isinstance(statement, dict):
                    yield statement


SUB_VARIABLE = re.compile(r"\$\{(?!!)[^}]*\}")


def literal(value: Any) -> str | None:
    """The text of a resource or action when it is plain text, or of an Fn::Sub with each
    variable standing for one name (enough to see "*" and "table/*")."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        text = sub if isinstance(sub, str) else sub[0] if isinstance(sub, list) and sub else None
        return SUB_VARIABLE.sub("name", text) if isinstance(text, str) else None
    return None


def parameter_can_be_star(template: dict[str, Any], value: Any) -> str | None:
    """The parameter a resource is given by, when nothing stops it from being "*"."""
    if not (isinstance(value, dict) and set(value) == {"Ref"}):
        return None
    name = value["Ref"]
    parameter = template.get("Parameters", {}).get(name)
    if parameter is None:
        return None
    pattern = parameter.get("AllowedPattern")
    allowed = parameter.get("AllowedValues")
    if allowed is not None:
        return name if any("*" in str(v) for v in allowed) else None
    if pattern is None or re.fullmatch(pattern, "*"):
        return name
    return None


def explanations(resource: dict[str, Any], kind: str) -> dict[str, str]:
    section = (resource.get("Metadata") or {}).get(METADATA_KEY) or {}
    found = section.get(kind) or {}
    if not isinstance(found, dict):
        return {}
    # An empty reason explains nothing.
    return {str(k): str(v) for k, v in found.items() if v is not None and str(v).strip()}


def wildcard_reasons(
    template: dict[str, Any], statement: dict[str, Any], identity: bool
) -> list[str]:
    """Why an Allow statement is broader than named resources and actions ([] if it is not)."""
    if statement.get("Effect") != "Allow":
        return []
    reasons = []
    if "NotAction" in statement:
        reasons.append("NotAction allows every other action")
    if "NotResource" in statement:
        reasons.append("NotResource allows every other resource")
    for action in as_list(statement.get("Action", [])):
        text = literal(action)
        if text is not None and "*" in text:
            reasons.append(f'wildcard action "{text}"')
    principal = statement.get("Principal")
    if principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))):
        reasons.append('Principal "*"')
    if identity:
        for resource in as_list(statement.get("Resource", [])):
            text = literal(resource)
            if text == "*":
                reasons.append('Resource "*"')
            elif text is not None and WHOLE_TYPE.match(text):
                reasons.append(f'every resource of a type: "{text}"')
            parameter = parameter_can_be_star(template, resource)
            if parameter:
                reasons.append(f'Resource is parameter {parameter}, which may be "*" (give it an AllowedPattern)')
    return reasons


def policy_documents(resource: dict[str, Any]) -> Iterator[Any]:
    props = resource.get("Properties") or {}
    kind = resource.get("Type")
    if kind == "AWS::IAM::Role":
        for policy in as_list(props.get("Policies", [])):
            if isinstance(policy, dict):
                yield policy.get("PolicyDocument")
    elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        yield props.get("PolicyDocument")
    elif kind in RESOURCE_POLICY_PROPERTIES:
        yield props.get(RESOURCE_POLICY_PROPERTIES[kind])


def managed_policy_findings(
    template: dict[str, Any], logical_id: str, resource: dict[str, Any], explained: dict[str, str]
) -> tuple[list[Finding], set[str]]:
    """Managed policies on a role that the template does not define (so cannot be read)."""
    props = resource.get("Properties") or {}
    defined = {
        k for k, r in template.get("Resources", {}).items() if r.get("Type") == "AWS::IAM::ManagedPolicy"
    }
    findings, used = [], set()
    for arn in as_list(props.get("ManagedPolicyArns", [])):
        if isinstance(arn, dict) and arn.get("Ref") in defined:
            continue
        # As written: a plain ARN, or the text of its Fn::Sub.
        text = arn if isinstance(arn, str) else arn.get("Fn::Sub") if isinstance(arn, dict) else None
        text = text if isinstance(text, str) else json.dumps(arn, sort_keys=True)
        if text in explained:
            used.add(text)
            continue
        what = "an AWS-managed policy" if ":iam::aws:policy/" in text else "a managed policy not defined in the template"
        findings.append(
            Finding(logical_id, "", f"{what} is attached ({text}); its grants cannot be checked and are not explained")
        )
    return findings, used


def check(template: dict[str, Any]) -> list[Finding]:
    """Findings on an already transformed template."""
    findings: list[Finding] = []
    for logical_id, resource in sorted(template.get("Resources", {}).items()):
        kind = resource.get("Type")
        if kind not in IDENTITY_POLICY_TYPES and kind not in RESOURCE_POLICY_PROPERTIES:
            continue
        explained = explanations(resource, "wildcards")
        used: set[str] = set()
        for document in policy_documents(resource):
            for statement in statements(document):
                reasons = wildcard_reasons(template, statement, kind in IDENTITY_POLICY_TYPES)
                if not reasons:
                    continue
                sid = statement.get("Sid", "")
                if sid in explained:
                    used.add(sid)
                    continue
                missing = "no Sid to explain it by" if not sid else f"no Metadata.{METADATA_KEY}.wildcards.{sid} reason"
                findings.append(Finding(logical_id, sid, f"{'; '.join(reasons)}: {missing}"))
        explained_policies = explanations(resource, "managed-policies")
        if kind == "AWS::IAM::Role":
            found, used_policies = managed_policy_findings(template, logical_id, resource, explained_policies)
            findings.extend(found)
        else:
            used_policies = set()
        for sid in sorted(set(explained) - used):
            findings.append(Finding(logical_id, sid, "explained in Metadata but no statement needs it"))
        for arn in sorted(set(explained_policies) - used_policies):
            findings.append(Finding(logical_id, "", f"managed policy {arn} explained in Metadata but not attached"))
    return findings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template")
    parser.add_argument("--transformed", help="also write the transformed template (JSON) here")
    args = parser.parse_args(argv)
    try:
        transformed = deployed(args.template)
    except Exception as e:  # the translator raises its own exception types
        print(f"{args.template}: the SAM transform failed: {e}", file=sys.stderr)
        return 2
    if args.transformed:
        with open(args.transformed, "w", encoding="utf-8") as f:
            json.dump(transformed, f, indent=1, sort_keys=True)
    findings = check(transformed)
    for finding in findings:
        print(f"{args.template}: {finding}", file=sys.stderr)
    if findings:
        print(
            f"{len(findings)} unexplained grant(s) in the transformed template: scope them, or say why in Metadata.{METADATA_KEY}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
