//! The metrics the stack's alarms and dashboards watch, read from the template, so that a
//! test can check each against what the functions emit: an alarm on a metric nobody emits
//! never fires, and a dashboard widget on one stays empty.

mod insights;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{Context, Template, TemplateError, scalar_to_string};

/// One metric an alarm or a dashboard widget reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MonitoredMetric {
    /// `alarm <LogicalId>` or `dashboard widget <title>`.
    pub used_by: String,
    pub namespace: String,
    pub metric: String,
    /// Dimension name to value, as `ctx` resolves them. `*` stands for any value: a
    /// dimension a Metrics Insights query groups by or leaves open in its `SCHEMA`.
    pub dimensions: BTreeMap<String, String>,
}

/// Every metric of every `AWS::CloudWatch::Alarm` (a plain alarm's metric, each `MetricStat`
/// of a metric-math alarm, the metrics of a Metrics Insights expression) and of every metric
/// widget of every `AWS::CloudWatch::Dashboard` (metrics arrays, `.` shorthand included, and
/// Insights queries), with intrinsics resolved against `ctx`. Use [`Context::symbolic`] to
/// read the template without a stack (resources then read as their logical ids).
///
/// Math expressions over other entries (`SUM([a, b])`) add no metric of their own: their
/// inputs are listed. Alarms of a resource condition are read whether or not it holds.
pub fn monitored_metrics(
    template: &Template,
    ctx: &Context,
) -> Result<Vec<MonitoredMetric>, TemplateError> {
    let mut out = Vec::new();
    for (id, alarm) in template.resources_of("AWS::CloudWatch::Alarm") {
        let props = ctx.resolve(template, &alarm.properties, id)?;
        alarm_metrics(&format!("alarm {id}"), &props, &mut out)?;
    }
    for (id, dashboard) in template.resources_of("AWS::CloudWatch::Dashboard") {
        let body = ctx.resolve(template, &dashboard.properties["DashboardBody"], id)?;
        let body = body
            .as_str()
            .ok_or_else(|| shape(id, "DashboardBody is not a string".into()))?;
        let body: Value = serde_json::from_str(body)
            .map_err(|e| shape(id, format!("DashboardBody is not JSON: {e}")))?;
        dashboard_metrics(id, &body, &mut out)?;
    }
    Ok(out)
}

fn shape(context: &str, reason: String) -> TemplateError {
    TemplateError::Shape(format!("{context}: {reason}"))
}

fn alarm_metrics(
    used_by: &str,
    props: &Value,
    out: &mut Vec<MonitoredMetric>,
) -> Result<(), TemplateError> {
    if props.get("MetricName").is_some() {
        out.push(metric_of(used_by, props)?);
        return Ok(());
    }
    let queries = props
        .get("Metrics")
        .and_then(Value::as_array)
        .ok_or_else(|| shape(used_by, "neither MetricName nor Metrics".into()))?;
    for query in queries {
        if let Some(metric) = query.pointer("/MetricStat/Metric") {
            out.push(metric_of(used_by, metric)?);
        } else if let Some(expression) = query.get("Expression").and_then(Value::as_str) {
            if insights::is_query(expression) {
                out.push(insights::parse(used_by, expression)?);
            }
        } else {
            return Err(shape(
                used_by,
                format!("a Metrics entry with neither MetricStat nor Expression: {query}"),
            ));
        }
    }
    Ok(())
}

/// A metric as an alarm names it: `Namespace`, `MetricName`, `Dimensions: [{Name, Value}]`.
fn metric_of(used_by: &str, metric: &Value) -> Result<MonitoredMetric, TemplateError> {
    let field = |key: &str| {
        metric
            .get(key)
            .and_then(scalar_to_string)
            .ok_or_else(|| shape(used_by, format!("no {key} in {metric}")))
    };
    let mut dimensions = BTreeMap::new();
    for d in metric
        .get("Dimensions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = d.get("Name").and_then(scalar_to_string);
        let value = d.get("Value").and_then(scalar_to_string);
        let (Some(name), Some(value)) = (name, value) else {
            return Err(shape(
                used_by,
                format!("dimension {d} needs Name and Value"),
            ));
        };
        dimensions.insert(name, value);
    }
    Ok(MonitoredMetric {
        used_by: used_by.to_owned(),
        namespace: field("Namespace")?,
        metric: field("MetricName")?,
        dimensions,
    })
}

fn dashboard_metrics(
    id: &str,
    body: &Value,
    out: &mut Vec<MonitoredMetric>,
) -> Result<(), TemplateError> {
    let widgets = body
        .get("widgets")
        .and_then(Value::as_array)
        .ok_or_else(|| shape(id, "DashboardBody has no widgets".into()))?;
    for widget in widgets {
        if widget.get("type").and_then(Value::as_str) != Some("metric") {
            continue; // alarm status, text and log widgets read no metric of their own
        }
        let title = widget
            .pointer("/properties/title")
            .and_then(Value::as_str)
            .unwrap_or("(untitled)");
        let used_by = format!("dashboard widget {title}");
        let rows = widget
            .pointer("/properties/metrics")
            .and_then(Value::as_array)
            .ok_or_else(|| shape(&used_by, "a metric widget without metrics".into()))?;
        let mut previous: Vec<String> = Vec::new();
        for row in rows {
            let row = row
                .as_array()
                .ok_or_else(|| shape(&used_by, format!("metrics row {row} is not an array")))?;
            if let Some(expression) = row
                .first()
                .and_then(|first| first.get("expression"))
                .and_then(Value::as_str)
            {
                if insights::is_query(expression) {
                    out.push(insights::parse(&used_by, expression)?);
                }
                continue;
            }
            let fields = widget_row(&used_by, row, &previous)?;
            out.push(MonitoredMetric {
                used_by: used_by.clone(),
                namespace: fields[0].clone(),
                metric: fields[1].clone(),
                dimensions: fields[2..]
                    .chunks(2)
                    .map(|pair| (pair[0].clone(), pair[1].clone()))
                    .collect(),
            });
            previous = fields;
        }
    }
    Ok(())
}

/// The strings of one widget metrics row, `[namespace, metric, (name, value)*, {options}?]`,
/// with each `.` taken from the row above.
fn widget_row(
    used_by: &str,
    row: &[Value],
    previous: &[String],
) -> Result<Vec<String>, TemplateError> {
    let mut fields = Vec::with_capacity(row.len());
    for (i, item) in row.iter().enumerate() {
        match item {
            Value::Object(_) if i + 1 == row.len() => {} // rendering options
            Value::String(s) if s == "." => {
                fields.push(previous.get(i).cloned().ok_or_else(|| {
                    shape(used_by, format!("`.` at position {i} has nothing above it"))
                })?)
            }
            Value::String(s) if s == "..." => {
                return Err(shape(
                    used_by,
                    "the `...` shorthand is not read here: write the row out".into(),
                ));
            }
            Value::String(s) => fields.push(s.clone()),
            other => {
                return Err(shape(
                    used_by,
                    format!("unexpected {other} in a metrics row"),
                ));
            }
        }
    }
    if fields.len() < 2 || fields.len() % 2 != 0 {
        return Err(shape(
            used_by,
            format!("a metrics row is namespace, metric, then name-value pairs: {fields:?}"),
        ));
    }
    Ok(fields)
}
