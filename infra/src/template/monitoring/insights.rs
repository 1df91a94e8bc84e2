//! The part of a CloudWatch Metrics Insights query that says which metrics it reads:
//! `SELECT FUNC(metric) FROM SCHEMA("Namespace", dim, ...) | "Namespace" [WHERE d = 'v'
//! AND ...] [GROUP BY d, ...] [ORDER BY ...] [LIMIT n]`.

use std::collections::BTreeMap;

use super::{MonitoredMetric, TemplateError};

/// Stands for any value of a dimension.
const ANY: &str = "*";

/// Whether a metric-math expression is a Metrics Insights query (rather than math over
/// other entries).
pub(super) fn is_query(expression: &str) -> bool {
    expression
        .trim_start()
        .get(..7)
        .is_some_and(|head| head.eq_ignore_ascii_case("SELECT "))
}

pub(super) fn parse(used_by: &str, query: &str) -> Result<MonitoredMetric, TemplateError> {
    let err = |reason: &str| {
        TemplateError::Shape(format!(
            "{used_by}: cannot read the Metrics Insights query {query:?}: {reason}"
        ))
    };
    // ASCII upper-casing keeps byte offsets, so keywords found in `upper` cut `query`.
    let upper = query.to_ascii_uppercase();
    let open = query
        .find('(')
        .ok_or_else(|| err("no (metric) after SELECT"))?;
    let close = open + query[open..].find(')').ok_or_else(|| err("unclosed ("))?;
    let metric = unquote(&query[open + 1..close]);
    if metric.is_empty() {
        return Err(err("no metric name"));
    }
    let from = close
        + upper[close..]
            .find(" FROM ")
            .ok_or_else(|| err("no FROM"))?
        + " FROM ".len();
    let clause_start = |keyword: &str| upper[from..].find(keyword).map(|i| from + i);
    let where_at = clause_start(" WHERE ");
    let group_at = clause_start(" GROUP BY ");
    let order_at = clause_start(" ORDER BY ");
    let limit_at = clause_start(" LIMIT ");
    let end_of = |start: usize| {
        [where_at, group_at, order_at, limit_at]
            .into_iter()
            .flatten()
            .filter(|&i| i > start)
            .min()
            .unwrap_or(query.len())
    };

    let source = query[from..end_of(from)].trim();
    let mut dimensions = BTreeMap::new();
    let namespace = if upper[from..].trim_start().starts_with("SCHEMA(") {
        let inner = source
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map(|(inner, _)| inner)
            .ok_or_else(|| err("SCHEMA( without )"))?;
        let mut parts = inner.split(',').map(unquote);
        let namespace = parts.next().unwrap_or_default();
        for dimension in parts {
            dimensions.insert(dimension, ANY.to_owned());
        }
        namespace
    } else {
        unquote(source)
    };
    if namespace.is_empty() {
        return Err(err("no namespace"));
    }

    if let Some(at) = where_at {
        let conditions = &query[at + " WHERE ".len()..end_of(at)];
        let conditions_upper = conditions.to_ascii_uppercase();
        let mut rest = (conditions, conditions_upper.as_str());
        loop {
            let (condition, next) = match rest.1.find(" AND ") {
                Some(i) => (&rest.0[..i], Some(i + " AND ".len())),
                None => (rest.0, None),
            };
            match condition.split_once('=') {
                // `!=`, `<=`, `>=` are not equalities: the dimension stays open.
                Some((name, value)) if !name.ends_with(['!', '<', '>']) => {
                    dimensions.insert(unquote(name), unquote(value));
                }
                _ => {
                    let name = condition.split_whitespace().next().unwrap_or_default();
                    dimensions
                        .entry(unquote(name))
                        .or_insert_with(|| ANY.to_owned());
                }
            }
            match next {
                Some(i) => rest = (&rest.0[i..], &rest.1[i..]),
                None => break,
            }
        }
    }
    if let Some(at) = group_at {
        for name in query[at + " GROUP BY ".len()..end_of(at)].split(',') {
            dimensions
                .entry(unquote(name))
                .or_insert_with(|| ANY.to_owned());
        }
    }
    dimensions.remove("");
    Ok(MonitoredMetric {
        used_by: used_by.to_owned(),
        namespace,
        metric,
        dimensions,
    })
}

/// A name or value without its surrounding space and quotes (`"RealtyStream"`, `'poller'`).
fn unquote(text: &str) -> String {
    text.trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_owned()
}
