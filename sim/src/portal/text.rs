//! Writing the portals' French HTML pages: relative dates, numbers, escaping.

use chrono::{DateTime, TimeDelta, Utc};

/// A relative date as Avito writes it (`il y a 7 minutes`, `il y a 3 jours`, `il y a 2 mois`).
pub(crate) fn relative_date(posted_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let age = (now - posted_at).max(TimeDelta::zero());
    let (n, unit) = if age < TimeDelta::hours(1) {
        (age.num_minutes(), "minute")
    } else if age < TimeDelta::days(1) {
        (age.num_hours(), "heure")
    } else if age < TimeDelta::days(7) {
        (age.num_days(), "jour")
    } else if age < TimeDelta::days(35) {
        (age.num_weeks(), "semaine")
    } else {
        (age.num_days() / 30, "mois")
    };
    let plural = if n > 1 && unit != "mois" { "s" } else { "" };
    format!("il y a {n} {unit}{plural}")
}

/// Groups of three digits split by a no-break space, as the French pages write prices
/// (`1 250 000`).
pub(crate) fn french_number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{a0}');
        }
        out.push(c);
    }
    out
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
