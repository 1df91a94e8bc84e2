//! Nested applications read into their parent. An `AWS::Serverless::Application` whose
//! `Location` is a local file (what `sam build` and `sam deploy` package: monitoring.yaml) is
//! replaced by that template's resources and conditions, its parameters bound to the values
//! the parent passes (or their defaults) and the parent's `Fn::GetAtt App.Outputs.Name` to
//! the output's value. The local stack then holds what the deployed one holds, in one stack.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

use super::{Template, TemplateError, sub_variables};

const APPLICATION: &str = "AWS::Serverless::Application";

/// Replaces each local nested application of `template` (a file `dir` holds) by its contents.
pub(super) fn inline_applications(
    template: &mut Template,
    dir: &Path,
) -> Result<(), TemplateError> {
    let local: Vec<(String, String)> = template
        .resources_of(APPLICATION)
        .filter_map(|(id, app)| local_location(app).map(|l| (id.to_owned(), l.to_owned())))
        .collect();
    for (id, location) in local {
        let app = template.resources.remove(&id).expect("listed above");
        if app.condition.is_some() {
            return Err(nested(
                &id,
                "a condition on a nested application is not read".into(),
            ));
        }
        let child = Template::load(&dir.join(&location))?;
        let bindings = parameter_bindings(&id, &app.properties, &child)?;
        merge_child(template, &id, child, &bindings)?;
    }
    Ok(())
}

/// The `Location` of a nested application when it is a file beside the template, not a URL or
/// a Serverless Application Repository application.
fn local_location(app: &super::Resource) -> Option<&str> {
    app.properties
        .get("Location")
        .and_then(Value::as_str)
        .filter(|l| !l.starts_with("s3://") && !l.starts_with("https://"))
}

fn nested(id: &str, reason: String) -> TemplateError {
    TemplateError::Shape(format!("nested application {id}: {reason}"))
}

/// Each parameter of `child` to the value the application passes it, or its default.
fn parameter_bindings(
    id: &str,
    properties: &Value,
    child: &Template,
) -> Result<BTreeMap<String, Value>, TemplateError> {
    let passed = properties
        .get("Parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(unknown) = passed.keys().find(|k| !child.parameters.contains_key(*k)) {
        return Err(nested(
            id,
            format!("passes {unknown}, no parameter of its template"),
        ));
    }
    child
        .parameters
        .iter()
        .map(|(name, parameter)| {
            passed
                .get(name)
                .or(parameter.default.as_ref())
                .cloned()
                .map(|value| (name.clone(), value))
                .ok_or_else(|| nested(id, format!("parameter {name} has no value and no Default")))
        })
        .collect()
}

/// Adds the child's resources and conditions to `template` (their parameters bound), and
/// replaces the parent's references to the child's outputs by the outputs' values.
fn merge_child(
    template: &mut Template,
    id: &str,
    child: Template,
    bindings: &BTreeMap<String, Value>,
) -> Result<(), TemplateError> {
    for (name, condition) in child.conditions {
        if template.conditions.contains_key(&name) {
            return Err(nested(id, format!("condition {name} is the parent's too")));
        }
        template.conditions.insert(name, bind(&condition, bindings));
    }
    for (name, mut resource) in child.resources {
        if template.resources.contains_key(&name) || template.parameters.contains_key(&name) {
            return Err(nested(id, format!("{name} is a name of the parent's too")));
        }
        resource.properties = bind(&resource.properties, bindings);
        template.resources.insert(name, resource);
    }
    let outputs: BTreeMap<String, Value> = child
        .outputs
        .iter()
        .map(|(name, value)| (name.clone(), bind(value, bindings)))
        .collect();
    for resource in template.resources.values_mut() {
        resource.properties = with_outputs(&resource.properties, id, &outputs)?;
    }
    for value in template.outputs.values_mut() {
        *value = with_outputs(value, id, &outputs)?;
    }
    Ok(())
}

/// `value` with each `Ref` to a bound parameter replaced by its value, and each `${Name}` of an
/// `Fn::Sub` given the value as a variable of its own.
fn bind(value: &Value, bindings: &BTreeMap<String, Value>) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| bind(v, bindings)).collect()),
        Value::Object(map) => {
            if let Some(Value::String(name)) = map.get("Ref")
                && let Some(bound) = bindings.get(name)
            {
                return bound.clone();
            }
            if let Some(sub) = map.get("Fn::Sub") {
                return single("Fn::Sub", bind_sub(sub, bindings));
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), bind(v, bindings)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

fn bind_sub(sub: &Value, bindings: &BTreeMap<String, Value>) -> Value {
    let (text, mut variables) = match sub {
        Value::String(text) => (text.clone(), Map::new()),
        Value::Array(parts) => match (parts.first(), parts.get(1).and_then(Value::as_object)) {
            (Some(Value::String(text)), Some(variables)) => (
                text.clone(),
                variables
                    .iter()
                    .map(|(k, v)| (k.clone(), bind(v, bindings)))
                    .collect(),
            ),
            _ => return bind(sub, bindings),
        },
        other => return bind(other, bindings),
    };
    let mut names = BTreeSet::new();
    sub_variables(&text, &mut names);
    for name in names {
        if let Some(bound) = bindings.get(&name)
            && !variables.contains_key(&name)
        {
            variables.insert(name, bound.clone());
        }
    }
    if variables.is_empty() {
        Value::String(text)
    } else {
        Value::Array(vec![Value::String(text), Value::Object(variables)])
    }
}

/// `value` with each `Fn::GetAtt [id, Outputs.Name]` replaced by the output's value.
fn with_outputs(
    value: &Value,
    id: &str,
    outputs: &BTreeMap<String, Value>,
) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| with_outputs(v, id, outputs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            if let Some(output) = map.get("Fn::GetAtt").and_then(|a| output_name(a, id)) {
                return outputs
                    .get(&output)
                    .cloned()
                    .ok_or_else(|| nested(id, format!("its template has no output {output}")));
            }
            if map.get("Fn::Sub").is_some_and(|s| sub_reads_outputs(s, id)) {
                return Err(nested(
                    id,
                    "an output read in Fn::Sub is not read here: use Fn::GetAtt".into(),
                ));
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), with_outputs(v, id, outputs)?)))
                    .collect::<Result<_, TemplateError>>()?,
            )
        }
        other => other.clone(),
    })
}

/// `Name` when `arg` (the argument of an `Fn::GetAtt`) reads `id`'s output `Name`.
fn output_name(arg: &Value, id: &str) -> Option<String> {
    let path = match arg {
        Value::Array(parts) if parts.first().and_then(Value::as_str) == Some(id) => {
            parts.get(1)?.as_str()?.to_owned()
        }
        Value::String(path) => path.strip_prefix(id)?.strip_prefix('.')?.to_owned(),
        _ => return None,
    };
    path.strip_prefix("Outputs.").map(str::to_owned)
}

fn sub_reads_outputs(sub: &Value, id: &str) -> bool {
    let text = match sub {
        Value::String(text) => text.as_str(),
        Value::Array(parts) => parts.first().and_then(Value::as_str).unwrap_or_default(),
        _ => return false,
    };
    text.contains(&format!("${{{id}.Outputs."))
}

fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PARENT: &str = r#"
Parameters:
  Email: { Type: String, Default: "" }
Resources:
  Queue: { Type: AWS::SQS::Queue }
  Ops:
    Type: AWS::Serverless::Application
    Properties:
      Location: child.yaml
      Parameters:
        QueueName: !GetAtt Queue.QueueName
        Email: !Ref Email
  Reader:
    Type: AWS::SQS::QueuePolicy
    Properties:
      Topic: !GetAtt Ops.Outputs.TopicArn
Outputs:
  TopicArn: { Value: !GetAtt [Ops, Outputs.TopicArn] }
"#;

    const CHILD: &str = r#"
Parameters:
  QueueName: { Type: String }
  Email: { Type: String }
  Threshold: { Type: Number, Default: 3 }
Conditions:
  HasEmail: !Not [!Equals [!Ref Email, ""]]
Resources:
  Topic: { Type: AWS::SNS::Topic }
  QueueAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Threshold: !Ref Threshold
      Dimensions: [{ Name: QueueName, Value: !Ref QueueName }]
      AlarmDescription: !Sub "${QueueName} holds ${Threshold} in ${AWS::Region}"
      AlarmActions: [!Ref Topic]
  Subscription:
    Type: AWS::SNS::Subscription
    Condition: HasEmail
    Properties: { TopicArn: !Ref Topic, Endpoint: !Ref Email }
Outputs:
  TopicArn: { Value: !Ref Topic }
"#;

    /// Writes `files` into a directory of their own and loads the first.
    fn load(test: &str, files: &[(&str, &str)]) -> Result<Template, TemplateError> {
        let dir = std::env::temp_dir().join(format!("realty-nested-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let template = Template::load(&dir.join(files[0].0));
        std::fs::remove_dir_all(&dir).unwrap();
        template
    }

    #[test]
    fn a_local_application_is_read_into_its_parent_with_its_parameters_bound() {
        let t = load("bound", &[("template.yaml", PARENT), ("child.yaml", CHILD)]).unwrap();
        assert!(!t.resources.contains_key("Ops"));
        assert_eq!(
            t.resources["QueueAlarm"].properties,
            json!({
                "Threshold": 3,
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["Queue", "QueueName"]}}],
                "AlarmDescription": {"Fn::Sub": [
                    "${QueueName} holds ${Threshold} in ${AWS::Region}",
                    {"QueueName": {"Fn::GetAtt": ["Queue", "QueueName"]}, "Threshold": 3},
                ]},
                "AlarmActions": [{"Ref": "Topic"}],
            })
        );
        assert_eq!(
            t.resources["Subscription"].condition.as_deref(),
            Some("HasEmail")
        );
        assert_eq!(
            t.conditions["HasEmail"],
            json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "Email"}, ""]}]})
        );
        // The child's parameters are not the parent's: the operator sets the parent's alone.
        assert_eq!(t.parameters.keys().collect::<Vec<_>>(), ["Email"]);
        assert_eq!(t.outputs["TopicArn"], json!({"Ref": "Topic"}));
        assert_eq!(
            t.resources["Reader"].properties,
            json!({"Topic": {"Ref": "Topic"}})
        );
    }

    #[test]
    fn a_name_both_templates_give_is_refused() {
        let child = CHILD.replace("  Topic: {", "  Queue: {");
        let err = load(
            "clash",
            &[("template.yaml", PARENT), ("child.yaml", &child)],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("Queue is a name of the parent's too"),
            "{err}"
        );
    }

    #[test]
    fn a_parameter_the_child_does_not_declare_is_refused() {
        let child = CHILD.replace("  QueueName: { Type: String }\n", "");
        let err = load(
            "unknown",
            &[("template.yaml", PARENT), ("child.yaml", &child)],
        )
        .unwrap_err();
        assert!(err.to_string().contains("passes QueueName"), "{err}");
    }

    #[test]
    fn an_output_the_child_lacks_is_refused() {
        let child = CHILD.replace("  TopicArn: { Value", "  Arn: { Value");
        let err = load(
            "output",
            &[("template.yaml", PARENT), ("child.yaml", &child)],
        )
        .unwrap_err();
        assert!(err.to_string().contains("no output TopicArn"), "{err}");
    }

    /// template.yaml's monitoring is monitoring.yaml's and its roles permissions.yaml's: the
    /// topic, alarms, dashboard and roles are provisioned with the stack, its outputs name
    /// them, and each function names its role.
    #[test]
    fn the_project_template_holds_its_monitoring_and_its_roles() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let t = Template::load(&root.join("template.yaml")).expect("template.yaml loads");
        let monitoring = std::fs::read_to_string(root.join("monitoring.yaml")).unwrap();
        let alarms = monitoring.matches("Type: AWS::CloudWatch::Alarm").count();
        assert!(alarms > 0);
        assert_eq!(t.resources_of("AWS::CloudWatch::Alarm").count(), alarms);
        assert_eq!(t.resources_of("AWS::CloudWatch::Dashboard").count(), 1);
        assert_eq!(t.resources_of(APPLICATION).count(), 0);
        assert_eq!(
            t.outputs["OperationsTopicArn"],
            json!({"Ref": "OperationsTopic"})
        );
        assert_eq!(
            t.resources["PollerErrorsAlarm"].properties["Dimensions"][0]["Value"],
            json!({"Ref": "PollerFunction"})
        );
        for (id, function) in t.resources_of("AWS::Serverless::Function") {
            let role = &function.properties["Role"]["Fn::GetAtt"];
            let role = role[0].as_str().expect("a role by Fn::GetAtt");
            assert_eq!(t.resources[role].kind, "AWS::IAM::Role", "{id}");
        }
        assert_eq!(
            t.resources["PollerRole"].properties["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"],
            json!({"Fn::GetAtt": ["ListingEventsStream", "Arn"]})
        );
    }
}
