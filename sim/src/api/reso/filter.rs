//! The `$filter`: comparisons joined by `and`, parsed, and checked against a listing.

use chrono::{DateTime, Utc};

use crate::listing::SimListing;
use crate::time_format;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }

    fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Self::Eq => left == right,
            Self::Ne => left != right,
            Self::Gt => left > right,
            Self::Ge => left >= right,
            Self::Lt => left < right,
            Self::Le => left <= right,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextField {
    City,
    StateOrProvince,
    PostalCode,
    StandardStatus,
    PropertyType,
    OriginatingSystemName,
}

/// One comparison of a `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    Modified(Op, DateTime<Utc>),
    Text(TextField, Op, String),
    ListPrice(Op, f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

fn tokenize(filter: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = filter.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".into()),
                        // '' is an escaped quote.
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            text.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => text.push(other),
                    }
                }
                tokens.push(Token::Quoted(text));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Parses a `$filter`: comparisons joined by `and`, parentheses allowed.
pub(crate) fn parse_filter(filter: &str) -> Result<Vec<Clause>, String> {
    let tokens = tokenize(filter)?;
    let mut clauses = Vec::new();
    let mut position = 0;
    let mut depth = 0usize;
    let mut expect_term = true;
    while position < tokens.len() {
        match &tokens[position] {
            Token::Open if expect_term => {
                depth += 1;
                position += 1;
            }
            Token::Close if !expect_term && depth > 0 => {
                depth -= 1;
                position += 1;
            }
            Token::Word(word) if !expect_term && word.eq_ignore_ascii_case("and") => {
                expect_term = true;
                position += 1;
            }
            Token::Word(field) if expect_term => {
                let op = match tokens.get(position + 1) {
                    Some(Token::Word(op)) => Op::parse(&op.to_ascii_lowercase())
                        .ok_or_else(|| format!("unsupported operator {op:?}"))?,
                    _ => return Err(format!("expected an operator after {field}")),
                };
                let value = match tokens.get(position + 2) {
                    Some(Token::Word(v) | Token::Quoted(v)) => v.clone(),
                    _ => return Err(format!("expected a value after {field} {op:?}")),
                };
                clauses.push(clause(field, op, &value)?);
                position += 3;
                expect_term = false;
            }
            other => {
                return Err(format!(
                    "unexpected {other:?}: only comparisons joined by 'and' are supported"
                ));
            }
        }
    }
    if (expect_term && !clauses.is_empty()) || depth != 0 {
        return Err("incomplete $filter".into());
    }
    Ok(clauses)
}

fn clause(field: &str, op: Op, value: &str) -> Result<Clause, String> {
    let text = |f: TextField| {
        if matches!(op, Op::Eq | Op::Ne) {
            Ok(Clause::Text(f, op, value.to_owned()))
        } else {
            Err(format!("{field} supports only eq and ne"))
        }
    };
    match field {
        "ModificationTimestamp" => time_format::parse(value)
            .map(|t| Clause::Modified(op, t))
            .ok_or_else(|| format!("{value:?} is not a DateTimeOffset")),
        "ListPrice" => value
            .parse::<f64>()
            .map(|p| Clause::ListPrice(op, p))
            .map_err(|_| format!("{value:?} is not a number")),
        "City" => text(TextField::City),
        "StateOrProvince" => text(TextField::StateOrProvince),
        "PostalCode" => text(TextField::PostalCode),
        "StandardStatus" => text(TextField::StandardStatus),
        "PropertyType" => text(TextField::PropertyType),
        "OriginatingSystemName" => text(TextField::OriginatingSystemName),
        other => Err(format!("filtering on {other} is not supported")),
    }
}

pub(super) fn clause_holds(clause: &Clause, listing: &SimListing, mls_name: &str) -> bool {
    match clause {
        Clause::Modified(op, at) => op.holds(listing.modified_at, *at),
        Clause::ListPrice(op, price) => op.holds(listing.list_price as f64, *price),
        Clause::Text(field, op, value) => {
            let actual = match field {
                TextField::City => listing.address.city,
                TextField::StateOrProvince => listing.address.state,
                TextField::PostalCode => listing.address.zip,
                TextField::StandardStatus => listing.status.reso(),
                TextField::PropertyType => listing.property_type.reso_property_type(),
                TextField::OriginatingSystemName => mls_name,
            };
            let equal = actual.eq_ignore_ascii_case(value.trim());
            if *op == Op::Eq { equal } else { !equal }
        }
    }
}
