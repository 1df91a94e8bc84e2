//! The intrinsic functions the stack uses (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`,
//! `Fn::If`, and the conditions' `Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not`), evaluated
//! against one stack's context.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Template, TemplateError, scalar_to_string};

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
    /// When set, a `Ref` or `Fn::GetAtt` to a resource not known reads as the logical id
    /// (`MetricsFunction`, `PoisonRecordQueue.QueueName`) instead of failing.
    pub placeholders: bool,
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
            placeholders: false,
        })
    }

    /// A context for reading the template without a stack: parameters at their defaults,
    /// pseudo parameters of a stack `stack` in `us-east-1` of account `123456789012`, and
    /// every resource named by its logical id (see [`Context::placeholders`]).
    pub fn symbolic(template: &Template) -> Result<Self, TemplateError> {
        let mut ctx = Self::new(
            template,
            "stack",
            "us-east-1",
            "123456789012",
            &BTreeMap::new(),
        )?;
        ctx.placeholders = true;
        Ok(ctx)
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
                if key == "Ref" || key == "Condition" || key.starts_with("Fn::") {
                    self.intrinsic(template, key, arg, context)
                } else {
                    self.resolve_object(template, map, context)
                }
            }
            Value::Object(map) => self.resolve_object(template, map, context),
            other => Ok(Some(other.clone())),
        }
    }

    /// One intrinsic function `{key: arg}` evaluated.
    fn intrinsic(
        &self,
        template: &Template,
        key: &str,
        arg: &Value,
        context: &str,
    ) -> Result<Option<Value>, TemplateError> {
        let err = |reason: String| intrinsic_error(key, context, reason);
        match key {
            "Ref" => {
                let name = arg
                    .as_str()
                    .ok_or_else(|| err("argument is not a string".into()))?;
                self.reference(name).map_err(err)
            }
            "Fn::GetAtt" => self.get_att(arg).map(Some).map_err(err),
            "Fn::Sub" => self.sub(template, arg, context).map(Some),
            "Fn::Join" => self.join(template, arg, context).map(Some),
            "Fn::If" => {
                let a = arity(arg, 3).ok_or_else(|| err(format!("bad argument {arg}")))?;
                let name = a[0]
                    .as_str()
                    .ok_or_else(|| err("condition name is not a string".into()))?;
                let branch = if self.condition(template, name)? {
                    &a[1]
                } else {
                    &a[2]
                };
                self.resolve_in(template, branch, context)
            }
            "Fn::Equals" => {
                let a = arity(arg, 2).ok_or_else(|| err(format!("bad argument {arg}")))?;
                let l = self.resolve(template, &a[0], context)?;
                let r = self.resolve(template, &a[1], context)?;
                Ok(Some(Value::Bool(
                    scalar_to_string(&l) == scalar_to_string(&r),
                )))
            }
            "Fn::Not" => {
                let a = arity(arg, 1).ok_or_else(|| err(format!("bad argument {arg}")))?;
                Ok(Some(Value::Bool(!self.truth(template, &a[0], context)?)))
            }
            "Fn::And" | "Fn::Or" => self.and_or(template, key, arg, context).map(Some),
            "Condition" => {
                let name = arg
                    .as_str()
                    .ok_or_else(|| err("name is not a string".into()))?;
                Ok(Some(Value::Bool(self.condition(template, name)?)))
            }
            _ => Err(err("not supported by local provisioning".into())),
        }
    }

    fn get_att(&self, arg: &Value) -> Result<Value, String> {
        let parts: Vec<&str> = match arg {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => s.splitn(2, '.').collect(),
            _ => vec![],
        };
        let [resource, attribute] = parts[..] else {
            return Err(format!("bad argument {arg}"));
        };
        self.attribute(resource, attribute)
            .map(Value::String)
            .ok_or_else(|| format!("{resource}.{attribute} is not known (yet)"))
    }

    /// `Fn::Sub`: its text, or `[text, {variable: value}]`.
    fn sub(&self, template: &Template, arg: &Value, context: &str) -> Result<Value, TemplateError> {
        let err = |reason: String| intrinsic_error("Fn::Sub", context, reason);
        let (text, vars) = match arg {
            Value::String(s) => (s.as_str(), Map::new()),
            Value::Array(a) if a.len() == 2 => (
                a[0].as_str()
                    .ok_or_else(|| err("template is not a string".into()))?,
                a[1].as_object()
                    .cloned()
                    .ok_or_else(|| err("variables are not a map".into()))?,
            ),
            _ => return Err(err(format!("bad argument {arg}"))),
        };
        let mut local = BTreeMap::new();
        for (k, v) in vars {
            let v = self.resolve(template, &v, context)?;
            let v =
                scalar_to_string(&v).ok_or_else(|| err(format!("variable {v} is not a scalar")))?;
            local.insert(k, v);
        }
        self.substitute(text, &local)
            .map(Value::String)
            .map_err(err)
    }

    fn join(
        &self,
        template: &Template,
        arg: &Value,
        context: &str,
    ) -> Result<Value, TemplateError> {
        let err = |reason: String| intrinsic_error("Fn::Join", context, reason);
        let a = arity(arg, 2).ok_or_else(|| err(format!("bad argument {arg}")))?;
        let sep = a[0]
            .as_str()
            .ok_or_else(|| err("separator is not a string".into()))?;
        let items = self.resolve(template, &a[1], context)?;
        let parts: Option<Vec<String>> = items
            .as_array()
            .map(|xs| xs.iter().filter_map(scalar_to_string).collect());
        parts
            .map(|p| Value::String(p.join(sep)))
            .ok_or_else(|| err("items are not a list".into()))
    }

    fn and_or(
        &self,
        template: &Template,
        key: &str,
        arg: &Value,
        context: &str,
    ) -> Result<Value, TemplateError> {
        let a = arg
            .as_array()
            .ok_or_else(|| intrinsic_error(key, context, format!("bad argument {arg}")))?;
        let values = a
            .iter()
            .map(|x| self.truth(template, x, context))
            .collect::<Result<Vec<_>, _>>()?;
        let result = if key == "Fn::And" {
            values.iter().all(|b| *b)
        } else {
            values.iter().any(|b| *b)
        };
        Ok(Value::Bool(result))
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
                match self.refs.get(name) {
                    Some(v) => Ok(Some(Value::String(v.clone()))),
                    None if self.placeholders => Ok(Some(Value::String(name.to_owned()))),
                    None => Err(format!(
                        "{name} is not a parameter or a resource known (yet)"
                    )),
                }
            }
        }
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Option<String> {
        self.attributes
            .get(&(resource.to_owned(), attribute.to_owned()))
            .cloned()
            .or_else(|| self.placeholders.then(|| format!("{resource}.{attribute}")))
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
                self.attribute(resource, attribute)
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

fn intrinsic_error(function: &str, context: &str, reason: String) -> TemplateError {
    TemplateError::Intrinsic {
        function: function.to_owned(),
        context: context.to_owned(),
        reason,
    }
}

/// The arguments of an intrinsic that takes exactly `n`.
fn arity(arg: &Value, n: usize) -> Option<&Vec<Value>> {
    arg.as_array().filter(|a| a.len() == n)
}
