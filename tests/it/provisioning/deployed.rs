//! The template as CloudFormation deploys it (after the SAM transform), through
//! `infra/check_iam.py`: the functions' roles, and what holds data retained.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_tests::{Explain, TestAws, ensure};
use serde_json::Value;

use super::helpers::ensure_eq;

/// What `infra/check_iam.py` makes of a template: the template as CloudFormation deploys it
/// (after the SAM transform), the check's exit status and its report.
struct IamCheck {
    transformed: Value,
    status: Option<i32>,
    report: String,
}

fn run_iam_check(aws: &TestAws, template: &Path) -> Result<IamCheck, Failed> {
    let venv = realty_infra::emulator::ensure_venv(&aws.project_root).explain("the .venv")?;
    let out_path = aws
        .project_root
        .join("target/realty")
        .join(format!("{}-transformed.json", aws.unique_stack_name()));
    std::fs::create_dir_all(out_path.parent().ok_or("no parent")?).explain("target/realty")?;
    let output = Command::new(venv.join("bin/python"))
        .arg(aws.project_root.join("infra/check_iam.py"))
        .arg(template)
        .arg("--transformed")
        .arg(&out_path)
        .output()
        .explain("running infra/check_iam.py")?;
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    let text = std::fs::read_to_string(&out_path)
        .map_err(|e| format!("no transformed template ({e}); the check said: {report}"))?;
    let _ = std::fs::remove_file(&out_path);
    Ok(IamCheck {
        transformed: serde_json::from_str(&text).explain("transformed template")?,
        status: output.status.code(),
        report,
    })
}

/// The statements of a role's inline policies, with `Fn::If` branches flattened.
fn role_statements(role: &Value) -> Vec<Value> {
    fn flatten(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
            Value::Object(m) if m.contains_key("Fn::If") => {
                if let Some(args) = m["Fn::If"].as_array() {
                    args.iter().skip(1).for_each(|b| flatten(b, out));
                }
            }
            Value::Object(m) if m.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") => {}
            other => out.push(other.clone()),
        }
    }
    let mut out = Vec::new();
    for policy in role["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        flatten(&policy["PolicyDocument"]["Statement"], &mut out);
    }
    out
}

fn string_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Issue 12: SAM attached AWSLambdaKinesisExecutionRole, AWSLambdaDynamoDBExecutionRole,
/// AWSLambdaBasicExecutionRole and AWSXrayWriteOnlyAccess (all on `*`) to the functions'
/// roles, which checkov never saw. As deployed, each function's role has no managed policy,
/// no wildcard action, and `*` only for the X-Ray calls that accept no resource ARN.
pub(super) async fn deployed_roles_have_no_managed_policy_and_no_unexplained_wildcard(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let check = run_iam_check(&aws, &aws.project_root.join("template.yaml"))?;
    ensure_eq(
        check.status,
        Some(0),
        &format!("check_iam.py status ({})", check.report),
    )?;
    let resources = check.transformed["Resources"]
        .as_object()
        .ok_or("no Resources")?;
    let functions: Vec<(&String, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Function")
        .collect();
    ensure_eq(functions.len(), 8, "functions as deployed")?;
    let mut roles = BTreeSet::new();
    for (id, function) in functions {
        let role_id = function
            .pointer("/Properties/Role/Fn::GetAtt/0")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{id}: its role is not one of the template's"))?;
        ensure(
            roles.insert(role_id.to_owned()),
            format!("{id} shares its role {role_id}"),
        )?;
        let role = &resources[role_id];
        ensure_eq(role["Type"].as_str(), Some("AWS::IAM::Role"), role_id)?;
        let managed = string_list(&role["Properties"]["ManagedPolicyArns"]);
        ensure(
            managed.is_empty(),
            format!("{role_id} ({id}) has managed policies: {managed:?}"),
        )?;
        let statements = role_statements(role);
        ensure(!statements.is_empty(), format!("{role_id} grants nothing"))?;
        for statement in statements {
            let actions = string_list(&statement["Action"]);
            ensure(
                actions.iter().all(|a| !a.contains('*')),
                format!("{role_id}: wildcard action in {statement}"),
            )?;
            if string_list(&statement["Resource"]).iter().any(|r| r == "*") {
                ensure(
                    actions
                        .iter()
                        .all(|a| a == "xray:PutTraceSegments" || a == "xray:PutTelemetryRecords"),
                    format!("{role_id}: Resource \"*\" beyond X-Ray in {statement}"),
                )?;
            }
        }
    }
    Ok(())
}

/// The check fails the template as it was: a function without its own role gets SAM's role,
/// with the AWS-managed policies granting on every stream.
pub(super) async fn the_iam_check_refuses_the_roles_sam_would_make(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let text =
        std::fs::read_to_string(aws.project_root.join("template.yaml")).explain("template.yaml")?;
    let role_line = "      Role: !GetAtt Permissions.Outputs.MetricsRoleArn\n";
    ensure(
        text.contains(role_line),
        "MetricsFunction no longer names MetricsRole",
    )?;
    let crafted = aws
        .project_root
        .join("target/realty")
        .join(format!("{}-sam-role.yaml", aws.unique_stack_name()));
    std::fs::create_dir_all(crafted.parent().ok_or("no parent")?).explain("target/realty")?;
    // Its nested applications' templates stay where they are (Location is relative to it).
    let nested_dir = format!("Location: {}/", aws.project_root.display());
    let text = text
        .replace(role_line, "")
        .replace("Location: ", &nested_dir);
    std::fs::write(&crafted, text).explain("crafted template")?;
    let check = run_iam_check(&aws, &crafted);
    let _ = std::fs::remove_file(&crafted);
    let check = check?;
    ensure_eq(check.status, Some(1), "check_iam.py status on SAM's role")?;
    for policy in [
        "AWSLambdaKinesisExecutionRole",
        "AWSLambdaBasicExecutionRole",
    ] {
        ensure(
            check.report.contains(policy),
            format!("the check does not name {policy}: {}", check.report),
        )?;
    }
    Ok(())
}

/// Deleting the stack, or an update that replaces a resource, keeps what holds data: the
/// tables (also protected against DeleteTable), the data lake, the queues of rejected and
/// discarded records, and the key without which none of them can be read.
pub(super) async fn data_stores_are_retained_and_protected_from_deletion(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let check = run_iam_check(&aws, &aws.project_root.join("template.yaml"))?;
    let resources = check.transformed["Resources"]
        .as_object()
        .ok_or("no Resources")?;
    let mut kinds = BTreeSet::new();
    for (id, r) in resources {
        let kind = r["Type"].as_str().unwrap_or_default();
        if ![
            "AWS::DynamoDB::Table",
            "AWS::S3::Bucket",
            "AWS::KMS::Key",
            "AWS::SQS::Queue",
        ]
        .contains(&kind)
        {
            continue;
        }
        kinds.insert(kind);
        ensure_eq(
            r["DeletionPolicy"].as_str(),
            Some("Retain"),
            &format!("{id} DeletionPolicy"),
        )?;
        ensure_eq(
            r["UpdateReplacePolicy"].as_str(),
            Some("Retain"),
            &format!("{id} UpdateReplacePolicy"),
        )?;
        if kind == "AWS::DynamoDB::Table" {
            ensure_eq(
                r.pointer("/Properties/DeletionProtectionEnabled"),
                Some(&Value::Bool(true)),
                &format!("{id} DeletionProtectionEnabled"),
            )?;
        }
    }
    ensure_eq(kinds.len(), 4, "kinds of data stores found")
}
