//! The API's shared bearer token (docs/api.md): what the authorizer checks, and what
//! `realty api token --rotate` makes.

use subtle::ConstantTimeEq;

/// Shortest token accepted: the stack generates 40 characters.
pub const MIN_TOKEN_LEN: usize = 32;
/// Longest `Authorization` header read.
pub const MAX_AUTHORIZATION_BYTES: usize = 512;

/// Whether an `Authorization` header carries `token` (`Bearer <token>`). Compared in
/// constant time, so the answer's timing says nothing of how much of a guess was right; a
/// token shorter than [`MIN_TOKEN_LEN`] (an empty or unset secret) admits nobody.
pub fn bearer_matches(authorization: Option<&str>, token: &str) -> bool {
    let Some(header) = authorization.filter(|h| h.len() <= MAX_AUTHORIZATION_BYTES) else {
        return false;
    };
    // The scheme is case-insensitive (RFC 9110, 11.1): `BEARER` is `Bearer`.
    let Some(given) = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given)
    else {
        return false;
    };
    let token = token.trim();
    token.len() >= MIN_TOKEN_LEN && bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdefghijABCDEFGHIJ0123456789";

    #[test]
    fn only_the_bearer_token_passes() {
        assert!(bearer_matches(Some(&format!("Bearer {TOKEN}")), TOKEN));
        assert!(bearer_matches(
            Some(&format!("bearer {TOKEN}")),
            &format!("{TOKEN}\n")
        ));
        assert!(bearer_matches(Some(&format!("BEARER {TOKEN}")), TOKEN));
        assert!(!bearer_matches(Some(&format!("Basic {TOKEN}")), TOKEN));
        for wrong in [
            None,
            Some(""),
            Some(TOKEN),
            Some("Bearer "),
            Some("Basic dXNlcjpwYXNz"),
            Some(&format!("Bearer {}", &TOKEN[1..])),
            Some(&format!("Bearer {TOKEN}x")),
        ] {
            assert!(!bearer_matches(wrong, TOKEN), "{wrong:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_BYTES));
        assert!(!bearer_matches(
            Some(&long),
            &"a".repeat(MAX_AUTHORIZATION_BYTES - 7)
        ));
    }

    #[test]
    fn a_short_or_empty_token_admits_nobody() {
        assert!(!bearer_matches(Some("Bearer "), ""));
        assert!(!bearer_matches(Some("Bearer short"), "short"));
    }
}
