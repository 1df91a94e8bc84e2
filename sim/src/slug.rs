//! Slugs: text folded to letters, digits and single dashes, for market keys and the
//! listings' URLs.

/// Lower-cases, keeps letters and digits, folds every other run of characters into one `-`.
pub fn slug(text: &str) -> String {
    dashed(text, LetterCase::Lower)
}

/// Whether [`dashed`] lower-cases the letters it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LetterCase {
    Lower,
    Kept,
}

/// Keeps letters and digits, folds every other run of characters into one `-`, with no
/// `-` at either end: market keys (lower case) and listing URLs (case kept).
pub(crate) fn dashed(text: &str, case: LetterCase) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() {
            match case {
                LetterCase::Lower => out.extend(c.to_lowercase()),
                LetterCase::Kept => out.push(c),
            }
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_fold_everything_but_letters_and_digits() {
        assert_eq!(slug(" St. Louis, MO "), "st-louis-mo");
        assert_eq!(
            dashed("309 Church St APT 610", LetterCase::Kept),
            "309-Church-St-APT-610"
        );
        assert_eq!(dashed("--", LetterCase::Kept), "");
    }
}
