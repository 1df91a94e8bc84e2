//! `FilterCriteria` patterns, and the record as they see it.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::records::StreamRecord;

/// A `FilterCriteria` pattern: an object whose leaves are lists of accepted values. The
/// subset this runner evaluates: exact matches of strings, numbers, booleans and null, and
/// `{"exists": true|false}`, at any depth; other operators (`prefix`, `numeric`...) are
/// refused when read, so nothing is filtered differently from Lambda without saying so.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPattern(Map<String, Value>);

impl FilterPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("filter pattern {text:?}: {e}"))?;
        let Value::Object(map) = value else {
            return Err(format!("filter pattern {text:?} is not an object"));
        };
        check_pattern(&map).map_err(|e| format!("filter pattern {text:?}: {e}"))?;
        Ok(Self(map))
    }

    /// Whether a record (the event record JSON; Kinesis `data` decoded when it is JSON)
    /// matches.
    pub fn matches(&self, record: &Value) -> bool {
        pattern_matches(&self.0, record)
    }
}

fn check_pattern(map: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in map {
        match value {
            Value::Object(inner) => check_pattern(inner)?,
            Value::Array(values) => {
                if let Some(op) = values
                    .iter()
                    .find(|v| (v.is_object() || v.is_array()) && exists_operator(v).is_none())
                {
                    return Err(format!(
                        "{key}: {op} is a content-filter operator the local runner does not evaluate"
                    ));
                }
            }
            other => return Err(format!("{key}: {other} is not a list of values")),
        }
    }
    Ok(())
}

fn pattern_matches(pattern: &Map<String, Value>, record: &Value) -> bool {
    pattern.iter().all(|(key, expected)| {
        let actual = record.get(key);
        match expected {
            Value::Object(inner) => actual.is_some_and(|a| pattern_matches(inner, a)),
            Value::Array(values) => {
                let exists = values
                    .iter()
                    .filter_map(exists_operator)
                    .any(|wanted| wanted == actual.is_some());
                exists
                    || match actual {
                        // A list in the record matches when any of its elements does.
                        Some(Value::Array(items)) => items.iter().any(|i| values.contains(i)),
                        Some(a) => values.contains(a),
                        None => false,
                    }
            }
            _ => false,
        }
    })
}

/// `{"exists": true}` or `{"exists": false}`: whether the field must be there.
fn exists_operator(value: &Value) -> Option<bool> {
    let Value::Object(op) = value else {
        return None;
    };
    match (op.len(), op.get("exists")) {
        (1, Some(Value::Bool(wanted))) => Some(*wanted),
        _ => None,
    }
}

/// The record as filter patterns see it: Kinesis `data` is matched as the JSON it holds.
fn filter_view(record: &StreamRecord) -> Value {
    let mut view = record.json.clone();
    if let Some(data) = view.pointer_mut("/kinesis/data") {
        let decoded = data
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        if let Some(json) = decoded {
            *data = json;
        }
    }
    view
}

/// Whether `record` is kept for delivery: no patterns, or one of them matches.
pub(super) fn passes(filters: &[FilterPattern], record: &StreamRecord) -> bool {
    if filters.is_empty() {
        return true;
    }
    let view = filter_view(record);
    filters.iter().any(|f| f.matches(&view))
}
