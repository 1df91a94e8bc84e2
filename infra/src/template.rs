//! template.yaml read as data: its Parameters, Conditions, Resources and Outputs, with the
//! CloudFormation intrinsic functions the stack uses evaluated against a local context.
//!
//! Local provisioning reads everything it creates from here, so the local stack cannot
//! drift from the deployed one.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

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
}

#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Parameter>,
    pub conditions: BTreeMap<String, Value>,
    pub resources: BTreeMap<String, Resource>,
    pub outputs: BTreeMap<String, Value>,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

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
            resources.insert(name, Resource { kind, properties });
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

/// What `Ref` and `Fn::GetAtt` return for the resources of one stack, plus its parameters
/// and pseudo parameters: enough to evaluate the template's intrinsics.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub stack_name: String,
    pub region: String,
    pub account_id: String,
    pub partition: String,
    pub parameters: BTreeMap<String, Value>,
    pub refs: BTreeMap<String, String>,
    pub attributes: BTreeMap<(String, String), String>,
}

impl Context {
    /// A context whose parameters are the template's defaults, with `overrides` on top
    /// (values as CloudFormation passes them: strings, lists comma-separated).
    pub fn new(
        template: &Template,
        stack_name: &str,
        region: &str,
        account_id: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let mut parameters = BTreeMap::new();
        for (name, p) in &template.parameters {
            let raw = match overrides.get(name) {
                Some(v) => Some(Value::String(v.clone())),
                None => p.default.clone(),
            };
            let Some(raw) = raw else {
                return Err(TemplateError::Shape(format!(
                    "parameter {name} has no Default and no value was given"
                )));
            };
            let value = if p.kind == "CommaDelimitedList" {
                match raw {
                    Value::String(s) => Value::Array(
                        s.split(',')
                            .map(|x| Value::String(x.trim().to_owned()))
                            .collect(),
                    ),
                    other => other,
                }
            } else {
                // CloudFormation hands every scalar parameter to Ref as a string.
                Value::String(scalar_to_string(&raw).ok_or_else(|| {
                    TemplateError::Shape(format!("parameter {name}: not a scalar"))
                })?)
            };
            parameters.insert(name.clone(), value);
        }
        for name in overrides.keys() {
            if !template.parameters.contains_key(name) {
                return Err(TemplateError::Shape(format!("unknown parameter {name}")));
            }
        }
        Ok(Self {
            stack_name: stack_name.to_owned(),
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            partition: "aws".to_owned(),
            parameters,
            refs: BTreeMap::new(),
            attributes: BTreeMap::new(),
        })
    }

    pub fn set_ref(&mut self, logical_id: &str, value: impl Into<String>) {
        self.refs.insert(logical_id.to_owned(), value.into());
    }

    pub fn set_attribute(&mut self, logical_id: &str, attribute: &str, value: impl Into<String>) {
        self.attributes
            .insert((logical_id.to_owned(), attribute.to_owned()), value.into());
    }

    /// Evaluates a template condition by name.
    pub fn condition(&self, template: &Template, name: &str) -> Result<bool, TemplateError> {
        let expr = template
            .conditions
            .get(name)
            .ok_or_else(|| TemplateError::Intrinsic {
                function: "Condition".into(),
                context: name.into(),
                reason: "no such condition".into(),
            })?;
        self.truth(template, expr, name)
    }

    fn truth(
        &self,
        template: &Template,
        expr: &Value,
        context: &str,
    ) -> Result<bool, TemplateError> {
        match self.resolve_in(template, expr, context)? {
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            other => Err(TemplateError::Intrinsic {
                function: "condition".into(),
                context: context.into(),
                reason: format!("not a boolean: {other:?}"),
            }),
        }
    }

    /// Evaluates every intrinsic in `value`. `Ref: AWS::NoValue` removes the property or
    /// list element it stands in.
    pub fn resolve(
        &self,
        template: &Template,
        value: &Value,
        context: &str,
    ) -> Result<Value, TemplateError> {
        Ok(self
            .resolve_in(template, value, context)?
            .unwrap_or(Value::Null))
    }

    fn resolve_in(
        &self,
        template: &Template,
        value: &Value,
        context: &str,
    ) -> Result<Option<Value>, TemplateError> {
        let err = |function: &str, reason: String| TemplateError::Intrinsic {
            function: function.to_owned(),
            context: context.to_owned(),
            reason,
        };
        match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(v) = self.resolve_in(template, item, context)? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                match key.as_str() {
                    "Ref" => {
                        let name = arg
                            .as_str()
                            .ok_or_else(|| err("Ref", "argument is not a string".into()))?;
                        self.reference(name).map_err(|reason| err("Ref", reason))
                    }
                    "Fn::GetAtt" => {
                        let parts: Vec<&str> = match arg {
                            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                            Value::String(s) => s.splitn(2, '.').collect(),
                            _ => vec![],
                        };
                        let [resource, attribute] = parts[..] else {
                            return Err(err("Fn::GetAtt", format!("bad argument {arg}")));
                        };
                        self.attributes
                            .get(&(resource.to_owned(), attribute.to_owned()))
                            .map(|v| Some(Value::String(v.clone())))
                            .ok_or_else(|| {
                                err(
                                    "Fn::GetAtt",
                                    format!("{resource}.{attribute} is not known (yet)"),
                                )
                            })
                    }
                    "Fn::Sub" => {
                        let (text, vars) = match arg {
                            Value::String(s) => (s.as_str(), Map::new()),
                            Value::Array(a) if a.len() == 2 => (
                                a[0].as_str().ok_or_else(|| {
                                    err("Fn::Sub", "template is not a string".into())
                                })?,
                                a[1].as_object().cloned().ok_or_else(|| {
                                    err("Fn::Sub", "variables are not a map".into())
                                })?,
                            ),
                            _ => return Err(err("Fn::Sub", format!("bad argument {arg}"))),
                        };
                        let mut local = BTreeMap::new();
                        for (k, v) in vars {
                            let v = self.resolve(template, &v, context)?;
                            local.insert(
                                k,
                                scalar_to_string(&v).ok_or_else(|| {
                                    err("Fn::Sub", format!("variable {v} is not a scalar"))
                                })?,
                            );
                        }
                        self.substitute(text, &local)
                            .map(|s| Some(Value::String(s)))
                            .map_err(|r| err("Fn::Sub", r))
                    }
                    "Fn::Join" => {
                        let a = arg
                            .as_array()
                            .filter(|a| a.len() == 2)
                            .ok_or_else(|| err("Fn::Join", format!("bad argument {arg}")))?;
                        let sep = a[0]
                            .as_str()
                            .ok_or_else(|| err("Fn::Join", "separator is not a string".into()))?;
                        let items = self.resolve(template, &a[1], context)?;
                        let parts: Option<Vec<String>> = items
                            .as_array()
                            .map(|xs| xs.iter().filter_map(scalar_to_string).collect());
                        parts
                            .map(|p| Some(Value::String(p.join(sep))))
                            .ok_or_else(|| err("Fn::Join", "items are not a list".into()))
                    }
                    "Fn::If" => {
                        let a = arg
                            .as_array()
                            .filter(|a| a.len() == 3)
                            .ok_or_else(|| err("Fn::If", format!("bad argument {arg}")))?;
                        let name = a[0].as_str().ok_or_else(|| {
                            err("Fn::If", "condition name is not a string".into())
                        })?;
                        let branch = if self.condition(template, name)? {
                            &a[1]
                        } else {
                            &a[2]
                        };
                        self.resolve_in(template, branch, context)
                    }
                    "Fn::Equals" => {
                        let a = arg
                            .as_array()
                            .filter(|a| a.len() == 2)
                            .ok_or_else(|| err("Fn::Equals", format!("bad argument {arg}")))?;
                        let l = self.resolve(template, &a[0], context)?;
                        let r = self.resolve(template, &a[1], context)?;
                        Ok(Some(Value::Bool(
                            scalar_to_string(&l) == scalar_to_string(&r),
                        )))
                    }
                    "Fn::Not" => {
                        let a = arg
                            .as_array()
                            .filter(|a| a.len() == 1)
                            .ok_or_else(|| err("Fn::Not", format!("bad argument {arg}")))?;
                        Ok(Some(Value::Bool(!self.truth(template, &a[0], context)?)))
                    }
                    "Fn::And" | "Fn::Or" => {
                        let a = arg
                            .as_array()
                            .ok_or_else(|| err(key, format!("bad argument {arg}")))?;
                        let values = a
                            .iter()
                            .map(|x| self.truth(template, x, context))
                            .collect::<Result<Vec<_>, _>>()?;
                        let result = if key == "Fn::And" {
                            values.iter().all(|b| *b)
                        } else {
                            values.iter().any(|b| *b)
                        };
                        Ok(Some(Value::Bool(result)))
                    }
                    "Condition" => {
                        let name = arg
                            .as_str()
                            .ok_or_else(|| err("Condition", "name is not a string".into()))?;
                        Ok(Some(Value::Bool(self.condition(template, name)?)))
                    }
                    other if other.starts_with("Fn::") => {
                        Err(err(other, "not supported by local provisioning".into()))
                    }
                    _ => self.resolve_object(template, map, context),
                }
            }
            Value::Object(map) => self.resolve_object(template, map, context),
            other => Ok(Some(other.clone())),
        }
    }

    fn resolve_object(
        &self,
        template: &Template,
        map: &Map<String, Value>,
        context: &str,
    ) -> Result<Option<Value>, TemplateError> {
        let mut out = Map::new();
        for (k, v) in map {
            if let Some(v) = self.resolve_in(template, v, &format!("{context}.{k}"))? {
                out.insert(k.clone(), v);
            }
        }
        Ok(Some(Value::Object(out)))
    }

    fn reference(&self, name: &str) -> Result<Option<Value>, String> {
        match name {
            "AWS::NoValue" => Ok(None),
            "AWS::StackName" => Ok(Some(self.stack_name.clone().into())),
            "AWS::Region" => Ok(Some(self.region.clone().into())),
            "AWS::AccountId" => Ok(Some(self.account_id.clone().into())),
            "AWS::Partition" => Ok(Some(self.partition.clone().into())),
            "AWS::URLSuffix" => Ok(Some("amazonaws.com".into())),
            _ => {
                if let Some(p) = self.parameters.get(name) {
                    return Ok(Some(p.clone()));
                }
                self.refs
                    .get(name)
                    .map(|v| Some(Value::String(v.clone())))
                    .ok_or_else(|| format!("{name} is not a parameter or a resource known (yet)"))
            }
        }
    }

    fn substitute(&self, text: &str, local: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            // `${!Literal}` writes `${Literal}`.
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let name = &after[..end];
            let value = if let Some(v) = local.get(name) {
                v.clone()
            } else if let Some((resource, attribute)) = name.split_once('.') {
                self.attributes
                    .get(&(resource.to_owned(), attribute.to_owned()))
                    .cloned()
                    .ok_or_else(|| format!("{name} is not known (yet)"))?
            } else {
                let v = self.reference(name)?.unwrap_or_default();
                scalar_to_string(&v).ok_or_else(|| format!("{name} is not a scalar"))?
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEMPLATE: &str = r#"
Parameters:
  Mode: { Type: String, Default: PROVISIONED }
  Shards: { Type: Number, Default: 2 }
  Markets: { Type: CommaDelimitedList, Default: "a-tn,b-ny" }
Conditions:
  IsProvisioned: !Equals [!Ref Mode, PROVISIONED]
  IsOnDemand: !Not [!Condition IsProvisioned]
Resources:
  Key: { Type: AWS::KMS::Key }
  Stream:
    Type: AWS::Kinesis::Stream
    Properties:
      ShardCount: !If [IsProvisioned, !Ref Shards, !Ref AWS::NoValue]
      KeyId: !GetAtt Key.Arn
      Alias: !Sub alias/${AWS::StackName}-data
      Input: !Sub
        - '{"markets":["${M}"]}'
        - M: !Join ['","', !Ref Markets]
      Literal: !Sub "${!NotAVariable} in ${AWS::Region}"
      List: [one, !Ref AWS::NoValue, !Ref Mode]
Outputs:
  StreamName: { Value: !Ref Stream }
"#;

    fn context(template: &Template, overrides: &[(&str, &str)]) -> Context {
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut ctx =
            Context::new(template, "stack", "eu-west-1", "123456789012", &overrides).unwrap();
        ctx.set_ref("Key", "key-id");
        ctx.set_attribute(
            "Key",
            "Arn",
            "arn:aws:kms:eu-west-1:123456789012:key/key-id",
        );
        ctx.set_ref("Stream", "stack-stream");
        ctx
    }

    #[test]
    fn evaluates_short_form_intrinsics() {
        let t = Template::parse(TEMPLATE).unwrap();
        let ctx = context(&t, &[]);
        let props = ctx
            .resolve(&t, &t.resources["Stream"].properties, "Stream")
            .unwrap();
        assert_eq!(
            props,
            json!({
                "ShardCount": "2",
                "KeyId": "arn:aws:kms:eu-west-1:123456789012:key/key-id",
                "Alias": "alias/stack-data",
                "Input": r#"{"markets":["a-tn","b-ny"]}"#,
                "Literal": "${NotAVariable} in eu-west-1",
                "List": ["one", "PROVISIONED"],
            })
        );
        assert_eq!(
            ctx.resolve(&t, &t.outputs["StreamName"], "out").unwrap(),
            json!("stack-stream")
        );
    }

    #[test]
    fn conditions_follow_parameter_overrides() {
        let t = Template::parse(TEMPLATE).unwrap();
        let ctx = context(&t, &[("Mode", "ON_DEMAND")]);
        assert!(ctx.condition(&t, "IsOnDemand").unwrap());
        let props = ctx
            .resolve(&t, &t.resources["Stream"].properties, "Stream")
            .unwrap();
        assert!(props.get("ShardCount").is_none());
    }

    #[test]
    fn rejects_unknown_parameters_and_unknown_refs() {
        let t = Template::parse(TEMPLATE).unwrap();
        let overrides = [("Nope".to_string(), "1".to_string())]
            .into_iter()
            .collect();
        assert!(Context::new(&t, "s", "r", "a", &overrides).is_err());
        let ctx = Context::new(&t, "s", "r", "a", &BTreeMap::new()).unwrap();
        let err = ctx
            .resolve(&t, &json!({"Ref": "Missing"}), "X")
            .unwrap_err();
        assert!(err.to_string().contains("Missing"), "{err}");
    }

    #[test]
    fn reads_the_project_template() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let t = Template::load(&path).unwrap();
        assert_eq!(t.resources_of("AWS::DynamoDB::Table").count(), 3);
        assert_eq!(t.resources_of("AWS::Serverless::Function").count(), 3);
    }
}
