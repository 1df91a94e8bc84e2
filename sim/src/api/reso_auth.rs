//! The RESO API's OAuth2 token endpoint, `POST /reso/token` (client credentials, RFC 6749
//! §4.4, credentials in the form body), and the check of the bearer tokens it issues.
//!
//! Tokens are stateless: `sim.<issued unix seconds>.<keyed hash>`, valid for
//! [`TOKEN_LIFETIME_SECS`] of wall-clock time (not simulated time: a client caches them by
//! the clock it has). Any other bearer token is refused with 401, as a real server refuses
//! a made-up or expired one.

use percent_encoding::percent_decode_str;

use super::Reply;
use crate::random::{hash_bytes, hash_words};

/// The client id the simulator accepts.
pub const RESO_CLIENT_ID: &str = "realty-sim";
/// The client secret the simulator accepts.
pub const RESO_CLIENT_SECRET: &str = "realty-sim-secret";
/// The scope it grants (Trestle's is `api` too); a request may leave it out.
pub const RESO_SCOPE: &str = "api";
/// How long an issued token is taken, in seconds.
pub const TOKEN_LIFETIME_SECS: u64 = 3_600;
/// Clock skew allowed for a token issued "in the future".
const SKEW_SECS: u64 = 5;

/// `{"error", "error_description"}`, RFC 6749 §5.2.
fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({"error": error, "error_description": description}),
    )
}

fn signature(issued: u64) -> u64 {
    hash_words(&[
        hash_bytes(RESO_CLIENT_ID.as_bytes()),
        hash_bytes(RESO_CLIENT_SECRET.as_bytes()),
        issued,
    ])
}

/// A token issued at `issued` (unix seconds), as the endpoint issues it.
pub fn issue_token(issued: u64) -> String {
    format!("sim.{issued}.{:016x}", signature(issued))
}

/// Whether `token` was issued by [`issue_token`] and is still valid at `now`.
pub(crate) fn token_valid(token: &str, now: u64) -> bool {
    let mut parts = token.trim().split('.');
    let (Some("sim"), Some(issued), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(issued) = issued.parse::<u64>() else {
        return false;
    };
    mac == format!("{:016x}", signature(issued))
        && issued <= now + SKEW_SECS
        && now < issued.saturating_add(TOKEN_LIFETIME_SECS)
}

/// The pairs of an `application/x-www-form-urlencoded` body.
fn form_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(key)?, decode(value)?))
        })
        .collect()
}

/// Answers a token request made at `now` (unix seconds).
pub(crate) fn token_reply(body: &[u8], now: u64) -> Reply {
    let Some(pairs) = form_pairs(body) else {
        return oauth_error(400, "invalid_request", "the body is not a form");
    };
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") != Some("client_credentials") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    if field("client_id") != Some(RESO_CLIENT_ID)
        || field("client_secret") != Some(RESO_CLIENT_SECRET)
    {
        return oauth_error(401, "invalid_client", "unknown client or wrong secret");
    }
    if let Some(scope) = field("scope")
        && scope.split(' ').any(|s| !s.is_empty() && s != RESO_SCOPE)
    {
        return oauth_error(400, "invalid_scope", "the only scope is api");
    }
    Reply::json(
        200,
        &serde_json::json!({
            "access_token": issue_token(now),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "scope": RESO_SCOPE,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_760_000_000;

    fn body(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).expect("json")
    }

    #[test]
    fn client_credentials_get_a_token_that_expires() {
        let reply = token_reply(
            b"grant_type=client_credentials&client_id=realty-sim&client_secret=realty-sim-secret&scope=api",
            NOW,
        );
        assert_eq!(reply.status, 200);
        let answer = body(&reply);
        let token = answer["access_token"].as_str().expect("token");
        assert_eq!(answer["expires_in"], TOKEN_LIFETIME_SECS);
        assert!(token_valid(token, NOW));
        assert!(token_valid(token, NOW + TOKEN_LIFETIME_SECS - 1));
        assert!(!token_valid(token, NOW + TOKEN_LIFETIME_SECS));
        assert!(!token_valid(token, NOW - 60));
        // Forged or mangled tokens.
        assert!(!token_valid(&token.replace("sim.", "sim.1"), NOW));
        assert!(!token_valid(&format!("sim.{NOW}.0000000000000000"), NOW));
        assert!(!token_valid("test-token", NOW));
        assert!(!token_valid("", NOW));
    }

    #[test]
    fn bad_requests_get_oauth_errors() {
        for (form, status, error) in [
            (
                &b"grant_type=password&client_id=realty-sim&client_secret=realty-sim-secret"[..],
                400,
                "unsupported_grant_type",
            ),
            (
                b"grant_type=client_credentials&client_id=realty-sim&client_secret=wrong",
                401,
                "invalid_client",
            ),
            (
                b"grant_type=client_credentials&client_id=realty-sim",
                401,
                "invalid_client",
            ),
            (
                b"grant_type=client_credentials&client_id=realty-sim&client_secret=realty-sim-secret&scope=admin",
                400,
                "invalid_scope",
            ),
            (b"\xff\xfe", 400, "invalid_request"),
        ] {
            let reply = token_reply(form, NOW);
            assert_eq!(reply.status, status);
            assert_eq!(body(&reply)["error"], error);
        }
        // Percent-encoded values are decoded.
        let encoded = token_reply(
            b"grant_type=client_credentials&client_id=realty%2Dsim&client_secret=realty-sim-secret",
            NOW,
        );
        assert_eq!(encoded.status, 200);
    }
}
