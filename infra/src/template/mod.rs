//! template.yaml read as data: its Parameters, Conditions, Resources and Outputs (its nested
//! applications' templates, monitoring.yaml and permissions.yaml, read in), with the
//! CloudFormation intrinsic functions the stack uses evaluated against a local context.
//!
//! Local provisioning reads everything it creates from here, so the local stack cannot
//! drift from the deployed one.

mod context;
mod monitoring;
mod nested;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

pub use context::Context;
pub use monitoring::{MonitoredMetric, monitored_metrics};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("template.yaml: {0}")]
    Shape(String),
    #[error("template.yaml: cannot evaluate {function} in {context}: {reason}")]
    Intrinsic {
        function: String,
        context: String,
        reason: String,
    },
}

/// One template Parameter.
#[derive(Debug, Clone)]
pub struct Parameter {
    pub kind: String,
    pub default: Option<Value>,
}

/// One template Resource.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    /// Properties as written (intrinsics unevaluated, in their long `Fn::` form).
    pub properties: Value,
    /// The template condition the resource exists under, if any.
    pub condition: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Parameter>,
    pub conditions: BTreeMap<String, Value>,
    pub resources: BTreeMap<String, Resource>,
    pub outputs: BTreeMap<String, Value>,
}

impl Template {
    /// The template at `path` with the templates of its local nested applications
    /// (monitoring.yaml, permissions.yaml) in place of them (infra/src/template/nested.rs).
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut template = Self::parse(&text)?;
        nested::inline_applications(&mut template, path.parent().unwrap_or(Path::new(".")))?;
        Ok(template)
    }

    /// One template file as written: a nested application stays one resource (its template is
    /// read by [`Template::load`] alone, which knows where the file is).
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let yaml: serde_norway::Value = serde_norway::from_str(text)?;
        let root = yaml_to_json(yaml)?;
        let section = |name: &str| -> Map<String, Value> {
            root.get(name)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let parameters = section("Parameters")
            .into_iter()
            .map(|(name, p)| {
                let kind = p
                    .get("Type")
                    .and_then(Value::as_str)
                    .unwrap_or("String")
                    .to_owned();
                let default = p.get("Default").cloned();
                (name, Parameter { kind, default })
            })
            .collect();
        let mut resources = BTreeMap::new();
        for (name, r) in section("Resources") {
            let kind = r
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| TemplateError::Shape(format!("resource {name} has no Type")))?
                .to_owned();
            let properties = r
                .get("Properties")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            let condition = r
                .get("Condition")
                .and_then(Value::as_str)
                .map(str::to_owned);
            resources.insert(
                name,
                Resource {
                    kind,
                    properties,
                    condition,
                },
            );
        }
        if resources.is_empty() {
            return Err(TemplateError::Shape("no Resources".into()));
        }
        Ok(Self {
            parameters,
            conditions: section("Conditions").into_iter().collect(),
            resources,
            outputs: section("Outputs")
                .into_iter()
                .filter_map(|(k, v)| v.get("Value").cloned().map(|v| (k, v)))
                .collect(),
        })
    }

    /// Logical ids of the resources of one type, in name order.
    pub fn resources_of<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Resource)> {
        self.resources
            .iter()
            .filter(move |(_, r)| r.kind == kind)
            .map(|(k, r)| (k.as_str(), r))
    }
}

/// Turns YAML (with CloudFormation short-form tags such as `!Ref`, `!GetAtt`, `!Sub`) into
/// JSON with the long forms (`{"Ref": ..}`, `{"Fn::GetAtt": [..]}`, `{"Fn::Sub": ..}`).
fn yaml_to_json(value: serde_norway::Value) -> Result<Value, TemplateError> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n)
            .map_err(|e| TemplateError::Shape(format!("number {n}: {e}")))?,
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    other => {
                        return Err(TemplateError::Shape(format!("unsupported key {other:?}")));
                    }
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value)?;
            let (key, inner) = match name {
                "Ref" | "Condition" => (name.to_owned(), inner),
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (resource, attribute) = s.split_once('.').ok_or_else(|| {
                            TemplateError::Shape(format!(
                                "!GetAtt {s}: expected Resource.Attribute"
                            ))
                        })?;
                        (
                            "Fn::GetAtt".to_owned(),
                            Value::Array(vec![resource.into(), attribute.into()]),
                        )
                    }
                    other => ("Fn::GetAtt".to_owned(), other),
                },
                other => (format!("Fn::{other}"), inner),
            };
            let mut out = Map::new();
            out.insert(key, inner);
            Value::Object(out)
        }
    })
}

/// The names `value` refers to through `Ref`, `Fn::GetAtt` and the variables of `Fn::Sub`
/// (resources, parameters and pseudo parameters alike): what an output or a property needs
/// to exist before it can be evaluated.
pub fn references(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_references(value, &mut out);
    out
}

fn collect_references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        Value::Object(map) => {
            for (key, arg) in map {
                match (key.as_str(), arg) {
                    ("Ref", Value::String(name)) => {
                        out.insert(name.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        out.extend(parts.first().and_then(Value::as_str).map(str::to_owned));
                    }
                    ("Fn::GetAtt", Value::String(path)) => {
                        out.extend(path.split('.').next().map(str::to_owned));
                    }
                    ("Fn::Sub", Value::String(text)) => sub_variables(text, out),
                    ("Fn::Sub", Value::Array(parts)) => {
                        // Variables the second element defines are local, not references.
                        let local = parts.get(1).and_then(Value::as_object);
                        if let Some(text) = parts.first().and_then(Value::as_str) {
                            let mut names = BTreeSet::new();
                            sub_variables(text, &mut names);
                            out.extend(
                                names
                                    .into_iter()
                                    .filter(|n| local.is_none_or(|l| !l.contains_key(n))),
                            );
                        }
                        if let Some(local) = local {
                            local.values().for_each(|v| collect_references(v, out));
                        }
                    }
                    _ => collect_references(arg, out),
                }
            }
        }
        _ => {}
    }
}

/// The resource or parameter names of the `${Name}` and `${Name.Attribute}` variables of an
/// `Fn::Sub` text (`${!Literal}` is none).
fn sub_variables(text: &str, out: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { return };
        let name = &after[..end];
        if !name.starts_with('!') {
            out.extend(name.split('.').next().map(str::to_owned));
        }
        rest = &after[end + 1..];
    }
}

/// A scalar as CloudFormation would print it.
pub fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer property, whether the template wrote it as a number or (through `Ref`) a string.
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean property, whether written as a boolean or a string.
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
