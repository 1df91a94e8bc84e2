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
    let clauses = Clauses::find(query).map_err(err)?;
    let (namespace, mut dimensions) = clauses.source().map_err(err)?;
    if let Some(at) = clauses.where_at {
        let conditions = &query[at + " WHERE ".len()..clauses.end_of(at)];
        where_dimensions(conditions, &mut dimensions);
    }
    if let Some(at) = clauses.group_at {
        for name in query[at + " GROUP BY ".len()..clauses.end_of(at)].split(',') {
            dimensions
                .entry(unquote(name))
                .or_insert_with(|| ANY.to_owned());
        }
    }
    dimensions.remove("");
    Ok(MonitoredMetric {
        used_by: used_by.to_owned(),
        namespace,
        metric: clauses.metric,
        dimensions,
    })
}

/// Where the clauses of one query start (byte offsets into it), and its metric.
struct Clauses<'a> {
    query: &'a str,
    metric: String,
    /// Just past `FROM `.
    from: usize,
    where_at: Option<usize>,
    group_at: Option<usize>,
    order_at: Option<usize>,
    limit_at: Option<usize>,
}

impl<'a> Clauses<'a> {
    fn find(query: &'a str) -> Result<Self, &'static str> {
        // ASCII upper-casing keeps byte offsets, so keywords found in `upper` cut `query`.
        let upper = query.to_ascii_uppercase();
        let open = query.find('(').ok_or("no (metric) after SELECT")?;
        let close = open + query[open..].find(')').ok_or("unclosed (")?;
        let metric = unquote(&query[open + 1..close]);
        if metric.is_empty() {
            return Err("no metric name");
        }
        let from = close + upper[close..].find(" FROM ").ok_or("no FROM")? + " FROM ".len();
        let clause_start = |keyword: &str| upper[from..].find(keyword).map(|i| from + i);
        Ok(Self {
            query,
            metric,
            from,
            where_at: clause_start(" WHERE "),
            group_at: clause_start(" GROUP BY "),
            order_at: clause_start(" ORDER BY "),
            limit_at: clause_start(" LIMIT "),
        })
    }

    /// Where the clause starting at `start` ends: at the next clause, or the query's end.
    fn end_of(&self, start: usize) -> usize {
        [self.where_at, self.group_at, self.order_at, self.limit_at]
            .into_iter()
            .flatten()
            .filter(|&i| i > start)
            .min()
            .unwrap_or(self.query.len())
    }

    /// The namespace `FROM` names, with the dimensions a `SCHEMA(..)` lists (any value).
    fn source(&self) -> Result<(String, BTreeMap<String, String>), &'static str> {
        let source = self.query[self.from..self.end_of(self.from)].trim();
        let mut dimensions = BTreeMap::new();
        let namespace = if source.to_ascii_uppercase().starts_with("SCHEMA(") {
            let inner = source
                .split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'))
                .map(|(inner, _)| inner)
                .ok_or("SCHEMA( without )")?;
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
            return Err("no namespace");
        }
        Ok((namespace, dimensions))
    }
}

/// The dimensions of a `WHERE` clause's `AND`ed conditions: the value of an equality, any
/// value otherwise.
fn where_dimensions(conditions: &str, dimensions: &mut BTreeMap<String, String>) {
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

/// A name or value without its surrounding space and quotes (`"RealtyStream"`, `'poller'`).
fn unquote(text: &str) -> String {
    text.trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_owned()
}
