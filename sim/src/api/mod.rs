//! The listing APIs, rendered from the market's current state: pure functions from a
//! parsed request to a status and body, so they are fast and testable without HTTP.

pub(crate) mod realtor;
pub(crate) mod reso;
pub(crate) mod reso_auth;
pub(crate) mod zillow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Serialize, Serializer};

/// Which listing API a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ApiKind {
    Zillow,
    Realtor,
    Reso,
}

impl ApiKind {
    pub fn tag(self) -> u64 {
        match self {
            Self::Zillow => 1,
            Self::Realtor => 2,
            Self::Reso => 3,
        }
    }
}

/// An answer before faults and encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub(crate) const JSON: &str = "application/json";

impl Reply {
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                status,
                content_type: JSON,
                headers: Vec::new(),
                body,
            },
            Err(error) => Self::message(500, &format!("could not serialise the response: {error}")),
        }
    }

    /// `{"message": ...}`, the error shape of the RapidAPI gateway.
    pub fn message(status: u16, message: &str) -> Self {
        Self {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: serde_json::json!({ "message": message })
                .to_string()
                .into_bytes(),
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A number written as an integer when it is whole (`1`, not `1.0`), as the real APIs do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct JsonNumber(pub f64);

impl Serialize for JsonNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = self.0;
        if value.fract() == 0.0 && value.abs() < 1e15 {
            serializer.serialize_i64(value as i64)
        } else {
            serializer.serialize_f64(value)
        }
    }
}

/// Query pairs, percent-decoded, in request order.
pub(crate) type QueryPairs = Vec<(String, String)>;

/// The value of the first pair named `name`, compared case-insensitively.
pub(crate) fn query_value<'a>(pairs: &'a QueryPairs, name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// What a query component percent-encodes: all but RFC 3986's unreserved characters.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query component (RFC 3986 unreserved characters kept).
pub(crate) fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, QUERY_COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_written_as_integers() {
        let written =
            serde_json::to_string(&[JsonNumber(1.0), JsonNumber(0.5238), JsonNumber(2.5)])
                .expect("serialises");
        assert_eq!(written, "[1,0.5238,2.5]");
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(
            percent_encode("ModificationTimestamp gt 2025-03-03T12:00:00.000Z"),
            "ModificationTimestamp%20gt%202025-03-03T12%3A00%3A00.000Z"
        );
        assert_eq!(
            percent_encode("City eq 'St. Louis'"),
            "City%20eq%20%27St.%20Louis%27"
        );
    }
}
