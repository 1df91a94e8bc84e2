//! The text of portal pages: prices (`24 000 000 DH`, `19,000 DH`, `1,3 MDH`, Arabic-Indic
//! digits), areas (`150 m²`), floors (`Rez de chaussée`, `4ème`), counts (`3 Chambres`) and
//! relative dates (`il y a 3 heures`).

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};

/// Whitespace collapsed to single spaces, trimmed. Portals put tabs, newlines, no-break
/// spaces (U+00A0) and narrow no-break spaces (U+202F) inside prices and place names.
pub(super) fn clean(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c == '\u{200f}' || c == '\u{200e}')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The decimal digit of `c`: ASCII, Arabic-Indic (`٠`–`٩`) or Eastern Arabic-Indic (`۰`–`۹`).
fn digit(c: char) -> Option<u32> {
    match c {
        '0'..='9' => Some(c as u32 - '0' as u32),
        '\u{660}'..='\u{669}' => Some(c as u32 - 0x660),
        '\u{6f0}'..='\u{6f9}' => Some(c as u32 - 0x6f0),
        _ => None,
    }
}

/// Characters that group thousands: spaces of every width, the comma and the dot of either
/// convention, the apostrophe, and the Arabic thousands separator (U+066C).
fn is_group_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '.' | '\'' | '\u{66c}' | '\u{202f}')
}

/// The first whole number in `text` (`3 Chambres` is 3, `2 Rooms` is 2), read as digits
/// only (no grouping): counts are small.
pub fn parse_whole_number(text: &str) -> Option<u64> {
    let mut chars = text.chars().skip_while(|&c| digit(c).is_none()).peekable();
    let mut value: u64 = 0;
    let mut any = false;
    while let Some(d) = chars.peek().and_then(|&c| digit(c)) {
        value = value.checked_mul(10)?.checked_add(u64::from(d))?;
        any = true;
        chars.next();
    }
    any.then_some(value)
}

/// A price as a portal writes it, in minor units with its ISO currency: `Ok(None)` when the
/// page says there is none (`Prix à consulter`, `Price on request`, `Prix non spécifié`);
/// `Err` with a reason for text that is not a price (no currency, no digits) or not the
/// price of the listing (per day or night: a holiday let; per square metre; per year).
///
/// The number is read by `read_number` (`24 000 000 DH`, `19,000 DH`, `1.200.000 DH`,
/// `1 250 000,00 DH`); millions are `MDH` (`1,3 MDH`). The currency may follow or lead
/// (`MAD 1,500,000`).
pub fn parse_price(text: &str) -> Result<Option<(i64, &'static str)>, String> {
    let cleaned = clean(text);
    let lower = cleaned.to_lowercase();
    const NO_PRICE: [&str; 6] = [
        "consulter",
        "sur demande",
        "on request",
        "non spécifié",
        "demander le prix",
        "nous consulter",
    ];
    if NO_PRICE.iter().any(|phrase| lower.contains(phrase)) {
        return Ok(None);
    }
    let unspaced: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    const NOT_THE_PRICE: [(&str, &str); 25] = [
        ("/jour", "per day: a holiday let"),
        ("parjour", "per day: a holiday let"),
        ("perday", "per day: a holiday let"),
        ("/day", "per day: a holiday let"),
        ("/nuit", "per night: a holiday let"),
        ("parnuit", "per night: a holiday let"),
        ("lanuit", "per night: a holiday let"),
        ("pernight", "per night: a holiday let"),
        ("/night", "per night: a holiday let"),
        ("/semaine", "per week: a holiday let"),
        ("parsemaine", "per week: a holiday let"),
        ("lasemaine", "per week: a holiday let"),
        ("/week", "per week: a holiday let"),
        ("perweek", "per week: a holiday let"),
        ("/m²", "per square metre"),
        ("/m2", "per square metre"),
        ("lem²", "per square metre"),
        ("perm²", "per square metre"),
        ("perm2", "per square metre"),
        ("/sqm", "per square metre"),
        ("persqm", "per square metre"),
        ("/an", "per year"),
        ("paran", "per year"),
        ("/year", "per year"),
        ("peryear", "per year"),
    ];
    if let Some((_, what)) = NOT_THE_PRICE
        .iter()
        .find(|(marker, _)| unspaced.contains(marker))
    {
        return Err(format!(
            "price {} is {what}, not the listing's price",
            quoted(&cleaned)
        ));
    }
    let start = lower
        .find(|c: char| digit(c).is_some())
        .ok_or_else(|| format!("price {} has no digits", quoted(&cleaned)))?;
    let run = number_run(&lower[start..]);
    let unit = lower[start + run.len()..].trim();
    let (currency, millions) = currency_of(unit)
        .or_else(|| currency_before(lower[..start].trim_end()))
        .ok_or_else(|| {
            format!(
                "price {} names no currency this reader knows",
                quoted(&cleaned)
            )
        })?;
    let hundredths =
        read_number(run).ok_or_else(|| format!("price {} is not a number", quoted(&cleaned)))?;
    let minor = if millions {
        hundredths.checked_mul(1_000_000)
    } else {
        Some(hundredths)
    }
    .and_then(|m| i64::try_from(m).ok())
    .ok_or_else(|| format!("price {} is out of range", quoted(&cleaned)))?;
    Ok(Some((minor, currency)))
}

/// Whether a price text says it is per month (`8 500 MAD/mois`): a rent, never a sale's
/// price.
pub fn is_per_month(text: &str) -> bool {
    let unspaced: String = clean(text)
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    ["/mois", "parmois", "lemois", "/month", "permonth", "/mo"]
        .iter()
        .any(|marker| unspaced.contains(marker))
}

/// The currency named by `word` (lower case), and whether it counts millions.
fn currency_word(word: &str) -> Option<(&'static str, bool)> {
    match word {
        "dh" | "dhs" | "mad" | "dirham" | "dirhams" | "درهم" | "د.م" => Some(("MAD", false)),
        "mdh" | "mdhs" => Some(("MAD", true)),
        "€" | "eur" | "euro" | "euros" => Some(("EUR", false)),
        "$" | "usd" => Some(("USD", false)),
        _ => None,
    }
}

fn is_currency_char(c: char) -> bool {
    c.is_alphabetic() || matches!(c, '$' | '€' | '.')
}

/// The currency at the start of what follows the number.
fn currency_of(unit: &str) -> Option<(&'static str, bool)> {
    let end = unit
        .find(|c: char| !is_currency_char(c))
        .unwrap_or(unit.len());
    currency_word(unit[..end].trim_end_matches('.')).or_else(|| currency_word(&unit[..end]))
}

/// The currency at the end of what precedes the number (`MAD 1,500,000`).
fn currency_before(prefix: &str) -> Option<(&'static str, bool)> {
    let start = prefix.rfind(|c: char| !is_currency_char(c)).map_or(0, |i| {
        i + prefix[i..].chars().next().map_or(1, char::len_utf8)
    });
    currency_word(&prefix[start..])
}

/// The number at the start of `text`: digits and the characters that group or split them.
fn number_run(text: &str) -> &str {
    let end = text
        .find(|c: char| digit(c).is_none() && !is_group_separator(c) && c != '\u{66b}')
        .unwrap_or(text.len());
    text[..end].trim_end_matches(|c: char| is_group_separator(c) || c == '\u{66b}')
}

/// A number as the portals write it, in hundredths: groups of three digits after the first
/// (`24 000 000`, `19,000`, `1.200.000`, `1'200`), and a decimal part of one or two digits
/// after a last comma or dot (`1 250 000,00`, `97,5`, `1.35`). Anything else (`12 34`,
/// `1.2345`) is not read, rather than read wrong.
fn read_number(run: &str) -> Option<u64> {
    let mut groups: Vec<(String, Option<char>)> = Vec::new();
    let mut current = String::new();
    let mut before: Option<char> = None;
    for c in run.chars() {
        if let Some(d) = digit(c) {
            current.push(char::from_digit(d, 10)?);
        } else {
            if current.is_empty() {
                // Two separators in a row (`1 . 000`) are one.
                before = before.or(Some(c));
                continue;
            }
            groups.push((std::mem::take(&mut current), before));
            before = Some(c);
        }
    }
    if current.is_empty() {
        return None;
    }
    groups.push((current, before));
    let decimal = match groups.last() {
        Some((digits, Some(sep)))
            if groups.len() > 1
                && matches!(sep, ',' | '.' | '\u{66b}')
                && (1..=2).contains(&digits.len()) =>
        {
            groups.pop().map(|(digits, _)| digits)
        }
        _ => None,
    };
    let mut whole: u64 = 0;
    for (index, (digits, _)) in groups.iter().enumerate() {
        let grouped = index > 0 && digits.len() != 3;
        if grouped || digits.len() > 18 {
            return None;
        }
        let value: u64 = digits.parse().ok()?;
        whole = whole
            .checked_mul(10u64.pow(u32::try_from(digits.len()).ok()?))?
            .checked_add(value)?;
    }
    let fraction = match decimal.as_deref() {
        None => 0,
        Some(d) if d.len() == 1 => d.parse::<u64>().ok()? * 10,
        Some(d) => d.parse::<u64>().ok()?,
    };
    whole.checked_mul(100)?.checked_add(fraction)
}

/// An area in square metres: `150 m²`, `97m2`, `97,5 m²`, `1,200 m²`, `85`; `None` without a
/// number or with a unit other than square metres.
pub fn parse_area_sqm(text: &str) -> Option<f64> {
    let cleaned = clean(text).to_lowercase();
    let start = cleaned.find(|c: char| digit(c).is_some())?;
    let run = number_run(&cleaned[start..]);
    let unit = cleaned[start + run.len()..].trim();
    if !(unit.is_empty() || unit.starts_with("m²") || unit.starts_with("m2")) {
        return None;
    }
    let hundredths = read_number(run)?;
    (hundredths > 0).then(|| hundredths as f64 / 100.0)
}

/// A floor: `Rez de chaussée`, `RDC`, `Ground floor` are 0; `Sous-sol` is -1; `4`, `4ème`,
/// `4e étage`, `4th floor` are 4. `None` for anything else.
pub fn parse_floor(text: &str) -> Option<i16> {
    let lower = clean(text).to_lowercase();
    if lower.starts_with("rez") || lower == "rdc" || lower.starts_with("ground") {
        return Some(0);
    }
    if lower.contains("sous-sol") || lower.contains("sous sol") || lower.contains("basement") {
        // "Sous-sol" is the first level down; "2e sous-sol" the second.
        let level = parse_whole_number(&lower).unwrap_or(1);
        return i16::try_from(level).ok().map(|level| -level);
    }
    let first = lower.chars().next()?;
    // A floor is a number first (`4ème`), not words that hold one.
    digit(first)?;
    parse_whole_number(&lower).and_then(|n| i16::try_from(n).ok())
}

/// The time a relative date (`il y a 7 minutes`, `il y a 3 heures`, `il y a 2 jours`,
/// `hier`, `aujourd'hui`) points to from `observed_at`, as a day; `None` for text this reader
/// does not know (an absolute date in words is not guessed at).
pub(super) fn relative_day(text: &str, observed_at: DateTime<Utc>) -> Option<NaiveDate> {
    let lower = clean(text).to_lowercase();
    let today = observed_at.date_naive();
    if lower.starts_with("aujourd") || lower == "à l'instant" {
        return Some(today);
    }
    if lower.starts_with("hier") {
        return today.checked_sub_days(Days::new(1));
    }
    let rest = lower.strip_prefix("il y a ")?;
    // "il y a une heure", "il y a un jour".
    let (amount, unit) = match rest
        .strip_prefix("une ")
        .or_else(|| rest.strip_prefix("un "))
    {
        Some(unit) => (1, unit),
        None => (
            i64::try_from(parse_whole_number(rest)?).ok()?,
            rest.trim_start_matches(|c: char| digit(c).is_some() || c == ' '),
        ),
    };
    let delta = if unit.starts_with("sec") || unit == "s" {
        TimeDelta::try_seconds(amount)
    } else if unit.starts_with("min") {
        TimeDelta::try_minutes(amount)
    } else if unit.starts_with("heure") || unit == "h" {
        TimeDelta::try_hours(amount)
    } else if unit.starts_with("jour") || unit == "j" {
        TimeDelta::try_days(amount)
    } else if unit.starts_with("semaine") {
        TimeDelta::try_weeks(amount)
    } else {
        // Months and years are not fixed lengths; a day cannot be told from them.
        None
    }?;
    observed_at
        .checked_sub_signed(delta)
        .map(|at| at.date_naive())
}

/// `text` quoted for a reason, bounded.
fn quoted(text: &str) -> String {
    realty_model::listing::quote(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_as_the_portals_write_them() {
        let minor = |text: &str| parse_price(text).map(|p| p.map(|(minor, c)| (minor / 100, c)));
        assert_eq!(minor("24 000 000 DH"), Ok(Some((24_000_000, "MAD"))));
        assert_eq!(minor("19,000 DH\n\t"), Ok(Some((19_000, "MAD"))));
        assert_eq!(
            minor("1\u{a0}250\u{a0}000\u{a0}DH"),
            Ok(Some((1_250_000, "MAD")))
        );
        assert_eq!(minor("4\u{202f}000 DH"), Ok(Some((4_000, "MAD"))));
        assert_eq!(minor("1.200.000 Dhs"), Ok(Some((1_200_000, "MAD"))));
        assert_eq!(minor("8 500 MAD/mois"), Ok(Some((8_500, "MAD"))));
        assert_eq!(minor("1,3 MDH"), Ok(Some((1_300_000, "MAD"))));
        assert_eq!(minor("1.35 MDH"), Ok(Some((1_350_000, "MAD"))));
        assert_eq!(minor("2 MDH"), Ok(Some((2_000_000, "MAD"))));
        assert_eq!(minor("٢ ٤٠٠ ٠٠٠ درهم"), Ok(Some((2_400_000, "MAD"))));
        assert_eq!(minor("1 250 000,00 DH"), Ok(Some((1_250_000, "MAD"))));
        assert_eq!(minor("MAD 1,500,000"), Ok(Some((1_500_000, "MAD"))));
        assert_eq!(minor("€ 150 000"), Ok(Some((150_000, "EUR"))));
        assert_eq!(minor("1 500 000 د.م."), Ok(Some((1_500_000, "MAD"))));
        assert_eq!(parse_price("1,5 DH"), Ok(Some((150, "MAD"))));
        assert!(minor("7 000 DH/m²").is_err(), "per square metre");
        assert!(minor("12 000 DH / an").is_err(), "per year");
        assert!(minor("12 34 DH").is_err(), "not a grouping");
        assert!(minor("1.2345 MDH").is_err(), "not a decimal");
        assert_eq!(minor("۱۵۰۰۰۰۰ DH"), Ok(Some((1_500_000, "MAD"))));
        assert_eq!(minor("Prix à consulter"), Ok(None));
        assert_eq!(minor("Price on request"), Ok(None));
        assert!(minor("500 DH / jour").is_err());
        for per in [
            "500 DH/night",
            "600 DH la nuit",
            "3 000 DH / semaine",
            "12 000 DH per year",
            "7 000 DH per m²",
            "7 000 DH / sqm",
        ] {
            assert!(minor(per).is_err(), "{per}");
        }
        assert!(is_per_month("8 500 MAD/mois") && is_per_month("8,500 DH per month"));
        assert!(!is_per_month("1 500 000 DH"));
        assert!(minor("1 500 000").is_err(), "no currency");
        assert!(minor("DH").is_err(), "no digits");
        assert!(
            minor(&format!("{} DH", "9".repeat(40))).is_err(),
            "overflow"
        );
    }

    #[test]
    fn areas_floors_and_counts() {
        assert_eq!(parse_area_sqm("150\n\t\t m²"), Some(150.0));
        assert_eq!(parse_area_sqm("97m2"), Some(97.0));
        assert_eq!(parse_area_sqm("97,5 m²"), Some(97.5));
        assert_eq!(parse_area_sqm("97.0 m²"), Some(97.0));
        assert_eq!(parse_area_sqm("1,200 m²"), Some(1_200.0));
        assert_eq!(parse_area_sqm("1.200 m²"), Some(1_200.0));
        assert_eq!(parse_area_sqm("85"), Some(85.0));
        assert_eq!(parse_area_sqm("3 ha"), None);
        assert_eq!(parse_area_sqm("m²"), None);
        assert_eq!(parse_floor("Rez de chaussée"), Some(0));
        assert_eq!(parse_floor("4ème étage"), Some(4));
        assert_eq!(parse_floor("4"), Some(4));
        assert_eq!(parse_floor("Sous-sol"), Some(-1));
        assert_eq!(parse_floor("2e sous-sol"), Some(-2));
        assert_eq!(parse_floor("Plus de 10"), None);
        assert_eq!(parse_floor("Dernier étage"), None);
        assert_eq!(parse_whole_number("3 Chambres"), Some(3));
        assert_eq!(parse_whole_number("٣ غرف"), Some(3));
        assert_eq!(parse_whole_number("Studio"), None);
        assert_eq!(parse_whole_number(&"9".repeat(30)), None);
    }

    #[test]
    fn relative_days_from_the_observation() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T01:30:00Z")
            .expect("time")
            .to_utc();
        let day = |text| relative_day(text, at).map(|d| d.to_string());
        assert_eq!(day("il y a 7 minutes").as_deref(), Some("2026-11-24"));
        assert_eq!(day("il y a 3 heures").as_deref(), Some("2026-11-23"));
        assert_eq!(day("il y a 2 jours").as_deref(), Some("2026-11-22"));
        assert_eq!(day("hier").as_deref(), Some("2026-11-23"));
        assert_eq!(day("il y a une heure").as_deref(), Some("2026-11-24"));
        assert_eq!(day("il y a 2h").as_deref(), Some("2026-11-23"));
        assert_eq!(day("il y a 5 min").as_deref(), Some("2026-11-24"));
        assert_eq!(day("il y a un jour").as_deref(), Some("2026-11-23"));
        assert_eq!(day("il y a 2 mois"), None);
        assert_eq!(day("12 septembre"), None);
        assert_eq!(day(&format!("il y a {} jours", "9".repeat(25))), None);
    }
}
