//! Making houses: ids, addresses, sizes and prices drawn from a market's profile.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::listing::{
    Address, Derived, ListingStatus, PropertyType, SimListing, SourceIds, quirk, quirk_fraction,
};
use crate::profiles::{GENERIC_STREETS, MarketProfile};
use crate::random::{hash_bytes, hash_words, lognormal, normal, unit_interval, weighted_index};
use crate::slug::{LetterCase, dashed};

/// One ZIP code of a market: where it is and how expensive.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ZipArea {
    pub code: &'static str,
    pub latitude: f64,
    pub longitude: f64,
    /// Price level relative to the market (geometric mean 1 over the market).
    pub price_factor: f64,
    /// Share of the market's listings, relative.
    pub weight: f64,
}

/// The ZIP areas of a market. They depend on the ZIP codes only, not on the seed: a market
/// has the same geography in every run.
pub(crate) fn zip_areas(profile: &MarketProfile) -> Vec<ZipArea> {
    let mut areas: Vec<ZipArea> = profile
        .zips
        .iter()
        .map(|&code| {
            let h = hash_bytes(code.as_bytes());
            let mut rng = crate::random::stream(&[h]);
            let angle = unit_interval(h) * std::f64::consts::TAU;
            let radius = 0.015 + 0.075 * unit_interval(crate::random::mix64(h));
            let latitude = profile.latitude + radius * angle.sin();
            let longitude =
                profile.longitude + radius * angle.cos() / profile.latitude.to_radians().cos();
            ZipArea {
                code,
                latitude,
                longitude,
                price_factor: (0.32 * normal(&mut rng)).exp().clamp(0.5, 2.0),
                weight: 0.4 + rng.random::<f64>(),
            }
        })
        .collect();
    // Normalise so the market's median price stays near its profile.
    let total_weight: f64 = areas.iter().map(|a| a.weight).sum();
    let mean_log: f64 = areas
        .iter()
        .map(|a| a.weight * a.price_factor.ln())
        .sum::<f64>()
        / total_weight;
    for area in &mut areas {
        area.price_factor /= mean_log.exp();
    }
    areas
}

/// What creating a listing needs to know about its market.
pub(crate) struct MarketContext<'a> {
    pub seed: u64,
    pub profile: &'static MarketProfile,
    /// Position of the market in [`crate::builtin_markets`]: part of the ids.
    pub builtin_index: u64,
    pub key: &'a str,
    pub zips: &'a [ZipArea],
    /// See [`price_scale`].
    pub price_scale: f64,
}

const ID_SALT: u64 = 0x1D5;
const QUIRK_SALT: u64 = 0x0DD;

/// The ids of the `serial`-th listing of a market. Each market owns disjoint blocks of
/// every id space, and within a block ids grow with the serial plus a little jitter, as
/// real ids do.
fn source_ids(ctx: &MarketContext<'_>, serial: u64) -> (u64, SourceIds) {
    let h = hash_words(&[ctx.seed, ctx.builtin_index, serial, ID_SALT]);
    let zpid = 10_000_000 + ctx.builtin_index * 100_000_000 + serial * 17 + h % 17;
    let property_id = 1_000_000_000 + ctx.builtin_index * 400_000_000 + serial * 23 + (h >> 8) % 23;
    let listing_id = 2_900_000_000 + ctx.builtin_index * 300_000_000 + serial * 19 + (h >> 16) % 19;
    let mls_number = 2_000_000 + serial * 3 + (h >> 24) % 3;
    (
        zpid,
        SourceIds {
            zpid: zpid.to_string(),
            realtor_property_id: property_id.to_string(),
            realtor_listing_id: listing_id.to_string(),
            reso_listing_key: format!("{}{mls_number}", ctx.profile.mls_prefix),
            reso_listing_id: mls_number.to_string(),
        },
    )
}

/// Rounds a price the way listing agents write them: to a step that grows with the
/// price, often just below it (`$349,900`, `$1,649,000`).
pub(crate) fn nice_price(raw: f64, charm: bool) -> u64 {
    let step = price_step(raw);
    let rounded = ((raw / step as f64).round() as u64).max(1) * step;
    if charm {
        rounded - charm_amount(step)
    } else {
        rounded
    }
}

fn price_step(price: f64) -> u64 {
    if price < 100_000.0 {
        1_000
    } else if price < 1_000_000.0 {
        5_000
    } else if price < 5_000_000.0 {
        25_000
    } else {
        100_000
    }
}

fn charm_amount(step: u64) -> u64 {
    match step {
        1_000 | 5_000 => 100,
        25_000 => 1_000,
        _ => 100_000,
    }
}

/// A cut of `fraction` of `old`, rounded nicely and always strictly lower.
pub(crate) fn cut_price(old: u64, fraction: f64, charm: bool) -> u64 {
    let new = nice_price(old as f64 * (1.0 - fraction), charm);
    if new < old {
        new
    } else {
        old.saturating_sub(price_step(old as f64)).max(1)
    }
}

/// A rise of `fraction` of `old`, rounded nicely and always strictly higher.
pub(crate) fn raise_price(old: u64, fraction: f64, charm: bool) -> u64 {
    let new = nice_price(old as f64 * (1.0 + fraction), charm);
    if new > old {
        new
    } else {
        old + price_step(old as f64)
    }
}

/// Size of a price cut as a fraction of the price: most cuts are 2-10%, about one in ten
/// is deeper than 15% (the alerting threshold).
pub(crate) fn cut_fraction(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.random();
    let r: f64 = rng.random();
    if u < 0.04 {
        0.01 + 0.01 * r
    } else if u < 0.80 {
        // Skewed towards the small end: 3-5% cuts are the most common.
        0.02 + 0.08 * r.powf(1.6)
    } else if u < 0.90 {
        0.10 + 0.05 * r
    } else {
        0.155 + 0.15 * r
    }
}

/// Size of a price rise as a fraction of the price.
pub(crate) fn rise_fraction(rng: &mut ChaCha8Rng) -> f64 {
    0.01 + 0.05 * rng.random::<f64>()
}

/// Whether to round a price just below the step.
pub(crate) fn charm(rng: &mut ChaCha8Rng) -> bool {
    rng.random::<f64>() < 0.55
}

const DIRECTIONS: &[&str] = &["N", "S", "E", "W", "NE", "NW", "SE", "SW"];
const SUFFIXES: &[&str] = &[
    "St", "Ave", "Rd", "Dr", "Ln", "Ct", "Blvd", "Way", "Pl", "Pike", "Tpke", "Hwy",
];

/// RESO street parts of a street (`N Dale Mabry Hwy` -> `N`, `Dale Mabry`, `Hwy`).
fn street_parts(street: &str) -> (Option<String>, String, Option<String>, Option<String>) {
    let mut tokens: Vec<&str> = street.split_whitespace().collect();
    let dir_prefix = match tokens.as_slice() {
        [first, _, ..] if DIRECTIONS.contains(first) => Some(tokens.remove(0).to_owned()),
        _ => None,
    };
    let dir_suffix = match tokens.as_slice() {
        [_, .., last] if DIRECTIONS.contains(last) => tokens.pop().map(str::to_owned),
        _ => None,
    };
    let suffix = match tokens.as_slice() {
        [_, .., last] if SUFFIXES.contains(last) => tokens.pop().map(str::to_owned),
        _ => None,
    };
    (dir_prefix, tokens.join(" "), suffix, dir_suffix)
}

fn hex32(a: u64, b: u64) -> String {
    format!("{a:016x}{b:016x}")
}

/// Everything about a new listing, drawn from its market. The listing starts active at
/// `on_market_at`; callers adjust status and history for listings that predate the run.
pub(crate) fn create_listing(
    ctx: &MarketContext<'_>,
    rng: &mut ChaCha8Rng,
    serial: u64,
    on_market_at: DateTime<Utc>,
    used_lines: &mut HashSet<String>,
) -> SimListing {
    let property_type = PropertyType::ALL[weighted_index(rng, &ctx.profile.type_mix)];
    listing_of_type(ctx, rng, property_type, serial, on_market_at, used_lines)
}

/// A new listing of a given type (see [`create_listing`]).
pub(crate) fn listing_of_type(
    ctx: &MarketContext<'_>,
    rng: &mut ChaCha8Rng,
    property_type: PropertyType,
    serial: u64,
    on_market_at: DateTime<Utc>,
    used_lines: &mut HashSet<String>,
) -> SimListing {
    let profile = ctx.profile;
    let (zip, latitude, longitude) = location(ctx, rng);
    let living_area_sqft = living_area(rng, profile, property_type);
    let (beds, baths_full, baths_half) = rooms(rng, property_type, living_area_sqft);
    let lot_acres = lot_acres(rng, profile, property_type);
    let year_built = year_built(rng, profile, property_type);
    let fair_value = ctx.price_scale
        * fair_value(
            rng,
            profile,
            property_type,
            living_area_sqft,
            lot_acres,
            zip,
        );
    let Asking {
        overpricing,
        list_price,
        placeholder_price,
    } = Asking::draw(rng, profile, property_type, fair_value);
    let rent_estimate = rent_estimate(rng, profile, property_type, fair_value);
    let value_estimate =
        Some(((fair_value * lognormal(rng, 1.0, 0.05)) / 100.0).round() as u64 * 100);

    let address = address(rng, ctx, property_type, zip.code, used_lines);
    let (zpid, ids) = source_ids(ctx, serial);
    let quirks = hash_words(&[ctx.seed, ctx.builtin_index, serial, QUIRK_SALT]);
    let derived = derive_strings(ctx, &address, property_type, zpid, &ids, quirks);

    SimListing {
        ids,
        zpid,
        market: ctx.key.to_owned(),
        property_type,
        address,
        latitude,
        longitude,
        beds,
        baths_full,
        baths_half,
        living_area_sqft,
        lot_acres,
        year_built,
        list_price,
        original_list_price: list_price,
        last_price_change: None,
        rent_estimate,
        value_estimate,
        status: ListingStatus::Active,
        on_market_at,
        status_changed_at: on_market_at,
        modified_at: on_market_at,
        pending_at: None,
        closed_at: None,
        close_price: None,
        rental: false,
        overpricing,
        fair_value: fair_value.round() as u64,
        quirks,
        placeholder_price,
        derived,
    }
}

/// A listing's ZIP area, drawn by the areas' weights, and its coordinates near the area's
/// centre.
fn location<'a>(ctx: &MarketContext<'a>, rng: &mut ChaCha8Rng) -> (&'a ZipArea, f64, f64) {
    let zip_weights: Vec<f64> = ctx.zips.iter().map(|z| z.weight).collect();
    let zip = &ctx.zips[weighted_index(rng, &zip_weights)];
    let latitude = round6(zip.latitude + 0.011 * normal(rng));
    let longitude = round6(zip.longitude + 0.011 * normal(rng) / zip.latitude.to_radians().cos());
    (zip, latitude, longitude)
}

/// The year built, within the market's range (a few brand new); none for land.
fn year_built(
    rng: &mut ChaCha8Rng,
    profile: &MarketProfile,
    property_type: PropertyType,
) -> Option<u16> {
    (property_type != PropertyType::Land).then(|| {
        let (first, last) = profile.year_built;
        if rng.random::<f64>() < 0.05 {
            last
        } else {
            rng.random_range(first..=last)
        }
    })
}

/// A new listing's asking price against its fair value.
struct Asking {
    overpricing: f64,
    list_price: u64,
    placeholder_price: bool,
}

impl Asking {
    fn draw(
        rng: &mut ChaCha8Rng,
        profile: &MarketProfile,
        property_type: PropertyType,
        fair_value: f64,
    ) -> Self {
        let overpricing = (0.06 * normal(rng)).exp();
        let mut list_price = nice_price(fair_value * overpricing, charm(rng));
        // A few cheap-market listings carry an auction placeholder price, as in the real
        // feeds (a Syracuse house "for sale" at $1,000).
        let placeholder_price = profile.median_list_price < 300_000
            && property_type != PropertyType::Land
            && rng.random::<f64>() < 0.003;
        if placeholder_price {
            list_price = if rng.random::<bool>() { 1_000 } else { 10_000 };
        }
        Self {
            overpricing,
            list_price,
            placeholder_price,
        }
    }
}

/// The monthly rent the listing would fetch, from its fair value and the market's gross
/// yield; none for land.
fn rent_estimate(
    rng: &mut ChaCha8Rng,
    profile: &MarketProfile,
    property_type: PropertyType,
    fair_value: f64,
) -> Option<u32> {
    (property_type != PropertyType::Land).then(|| {
        let type_factor = match property_type {
            PropertyType::MultiFamily => 1.25,
            PropertyType::Condo => 1.05,
            PropertyType::Manufactured => 1.15,
            _ => 1.0,
        };
        (fair_value * profile.gross_rent_yield * type_factor / 12.0 * lognormal(rng, 1.0, 0.12))
            .round()
            .max(300.0) as u32
    })
}

fn living_area(
    rng: &mut ChaCha8Rng,
    profile: &MarketProfile,
    property_type: PropertyType,
) -> Option<u32> {
    let median_sqft = f64::from(profile.median_sqft);
    let (median, sigma, low, high) = match property_type {
        PropertyType::SingleFamily => (median_sqft, 0.28, 600.0, 8_000.0),
        PropertyType::Condo => (median_sqft * 0.55, 0.33, 380.0, 4_500.0),
        PropertyType::Townhouse => (median_sqft * 0.85, 0.22, 800.0, 4_000.0),
        PropertyType::MultiFamily => (median_sqft * 1.45, 0.30, 1_200.0, 12_000.0),
        PropertyType::Manufactured => (median_sqft * 0.7, 0.2, 600.0, 2_600.0),
        PropertyType::Apartment => (median_sqft * 0.5, 0.3, 350.0, 2_500.0),
        PropertyType::Land => return None,
    };
    Some(lognormal(rng, median, sigma).clamp(low, high).round() as u32)
}

const CALIBRATION_SALT: u64 = 0xCA1;
const CALIBRATION_SAMPLES: usize = 2_001;

/// The factor that puts a market's median list price at its profile's: the mix of types
/// and sizes moves the median away from the single-family price per square foot it
/// starts from. Drawn from a stream of its own, so it is the same for every seed.
pub(crate) fn price_scale(profile: &MarketProfile, zips: &[ZipArea]) -> f64 {
    let mut rng = crate::random::stream(&[hash_bytes(profile.city.as_bytes()), CALIBRATION_SALT]);
    let zip_weights: Vec<f64> = zips.iter().map(|z| z.weight).collect();
    let mut prices: Vec<f64> = (0..CALIBRATION_SAMPLES)
        .map(|_| {
            let property_type = PropertyType::ALL[weighted_index(&mut rng, &profile.type_mix)];
            let zip = &zips[weighted_index(&mut rng, &zip_weights)];
            let sqft = living_area(&mut rng, profile, property_type);
            let lot = lot_acres(&mut rng, profile, property_type);
            fair_value(&mut rng, profile, property_type, sqft, lot, zip)
        })
        .collect();
    prices.sort_by(f64::total_cmp);
    let median = prices[CALIBRATION_SAMPLES / 2];
    if median > 0.0 {
        profile.median_list_price as f64 / median
    } else {
        1.0
    }
}

fn round6(degrees: f64) -> f64 {
    (degrees * 1e6).round() / 1e6
}

fn rooms(
    rng: &mut ChaCha8Rng,
    property_type: PropertyType,
    sqft: Option<u32>,
) -> (Option<u8>, u8, u8) {
    let Some(sqft) = sqft.map(f64::from) else {
        return (None, 0, 0);
    };
    let noise = normal(rng);
    let (beds, min_beds, max_beds) = match property_type {
        PropertyType::SingleFamily => (sqft / 700.0 + 0.6 + 0.5 * noise, 1.0, 7.0),
        PropertyType::Condo | PropertyType::Apartment => {
            (sqft / 650.0 + 0.1 + 0.4 * noise, 0.0, 4.0)
        }
        PropertyType::Townhouse => (sqft / 650.0 + 0.4 + 0.4 * noise, 1.0, 5.0),
        PropertyType::MultiFamily => (sqft / 480.0 + 0.8 * noise, 2.0, 12.0),
        PropertyType::Manufactured => (sqft / 600.0 + 0.3 * noise, 2.0, 4.0),
        PropertyType::Land => (0.0, 0.0, 0.0),
    };
    let beds = beds.round().clamp(min_beds, max_beds) as u8;
    let full = if property_type == PropertyType::MultiFamily {
        (f64::from(beds) / 2.0 + 0.3 * normal(rng))
            .round()
            .clamp(2.0, 8.0)
    } else {
        (f64::from(beds) * 0.55 + 0.3 + 0.4 * normal(rng))
            .round()
            .clamp(1.0, f64::from(beds.max(1)) + 1.0)
    } as u8;
    let half_chance = match property_type {
        PropertyType::SingleFamily | PropertyType::Townhouse => 0.35,
        PropertyType::Condo | PropertyType::Apartment => 0.15,
        _ => 0.1,
    };
    let half = u8::from(rng.random::<f64>() < half_chance);
    (Some(beds), full, half)
}

fn lot_acres(
    rng: &mut ChaCha8Rng,
    profile: &MarketProfile,
    property_type: PropertyType,
) -> Option<f64> {
    let median_lot = f64::from(profile.median_lot_sqft);
    let sqft = match property_type {
        PropertyType::SingleFamily => lognormal(rng, median_lot, 0.5).clamp(1_300.0, 220_000.0),
        // Condos carry a token share of the building's lot, when any (435.6 = 0.01 acre).
        PropertyType::Condo => {
            if rng.random::<f64>() < 0.3 {
                return None;
            }
            435.6 * f64::from(rng.random_range(1u8..=3))
        }
        PropertyType::Townhouse => lognormal(rng, 2_200.0, 0.3),
        PropertyType::MultiFamily => lognormal(rng, median_lot * 0.8, 0.4).clamp(1_500.0, 90_000.0),
        PropertyType::Land => lognormal(rng, 0.35 * 43_560.0, 0.9).clamp(2_000.0, 1_750_000.0),
        PropertyType::Manufactured => lognormal(rng, 8_000.0, 0.5).clamp(2_000.0, 400_000.0),
        PropertyType::Apartment => return None,
    };
    // Some listings do not state the lot.
    if rng.random::<f64>() < 0.06 {
        return None;
    }
    Some((sqft / 43_560.0 * 10_000.0).round().max(1.0) / 10_000.0)
}

fn fair_value(
    rng: &mut ChaCha8Rng,
    profile: &MarketProfile,
    property_type: PropertyType,
    sqft: Option<u32>,
    lot_acres: Option<f64>,
    zip: &ZipArea,
) -> f64 {
    let median_price = profile.median_list_price as f64;
    let Some(sqft) = sqft.map(f64::from) else {
        // Land: priced by the lot, with a floor for the smallest lots.
        let acres = lot_acres.unwrap_or(0.35);
        let price = median_price * 0.3 * (acres / 0.35).powf(0.6) * zip.price_factor;
        return (price * lognormal(rng, 1.0, 0.3)).max(12_000.0);
    };
    let median_sqft = f64::from(profile.median_sqft);
    let price_per_sqft = median_price / median_sqft;
    let type_factor = match property_type {
        PropertyType::SingleFamily => 1.0,
        PropertyType::Condo => 1.12,
        PropertyType::Townhouse => 0.97,
        PropertyType::MultiFamily => 0.62,
        PropertyType::Manufactured => 0.42,
        PropertyType::Land | PropertyType::Apartment => 1.0,
    };
    // Larger homes cost less per square foot.
    let size_factor = (sqft / median_sqft).powf(-0.2);
    let price = price_per_sqft * sqft * type_factor * size_factor * zip.price_factor;
    (price * lognormal(rng, 1.0, 0.16)).max(15_000.0)
}

fn street_number(rng: &mut ChaCha8Rng, property_type: PropertyType) -> String {
    let u: f64 = rng.random();
    let number = match property_type {
        PropertyType::Condo | PropertyType::Apartment => 1 + (u * u * 2_999.0) as u32,
        _ => 10 + (u * u * 9_989.0) as u32,
    };
    if property_type == PropertyType::MultiFamily && rng.random::<f64>() < 0.1 {
        format!("{number}-{}", number + 2)
    } else {
        number.to_string()
    }
}

fn address(
    rng: &mut ChaCha8Rng,
    ctx: &MarketContext<'_>,
    property_type: PropertyType,
    zip: &'static str,
    used_lines: &mut HashSet<String>,
) -> Address {
    let profile = ctx.profile;
    let street_count = profile.local_streets.len() + GENERIC_STREETS.len();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let pick = rng.random_range(0..street_count);
        let street = match profile.local_streets.get(pick) {
            Some(local) => (*local).to_owned(),
            None => {
                let generic = GENERIC_STREETS[pick - profile.local_streets.len()];
                if rng.random::<f64>() < 0.12 {
                    format!("{} {generic}", DIRECTIONS[rng.random_range(0..4)])
                } else {
                    generic.to_owned()
                }
            }
        };
        let unit = match property_type {
            PropertyType::Condo | PropertyType::Apartment if rng.random::<f64>() < 0.8 => {
                let label = ["Apt", "Unit", "#"][rng.random_range(0..3)];
                let floor = rng.random_range(1u32..=30);
                let door = rng.random_range(1u32..=20);
                Some((label, format!("{}", floor * 100 + door)))
            }
            PropertyType::Townhouse if rng.random::<f64>() < 0.2 => {
                Some(("Unit", rng.random_range(1u32..=60).to_string()))
            }
            _ => None,
        };
        let candidate = Address {
            street_number: street_number(rng, property_type),
            street,
            unit,
            city: profile.city,
            state: profile.state,
            zip,
        };
        // Two houses at one address would confuse any matching by address.
        if used_lines.insert(candidate.line()) || attempt >= 20 {
            return candidate;
        }
    }
}

fn derive_strings(
    ctx: &MarketContext<'_>,
    address: &Address,
    property_type: PropertyType,
    zpid: u64,
    ids: &SourceIds,
    quirks: u64,
) -> Derived {
    let profile = ctx.profile;
    let line = address.line();
    let undisclosed = property_type == PropertyType::Land
        && quirk_fraction(quirks, quirk::UNDISCLOSED_ADDRESS, 0.25);
    let (zillow_address, zillow_detail_url) =
        zillow_address_and_url(profile, address, zpid, undisclosed);
    let zillow_unit = address.unit.as_ref().map(|(label, number)| {
        if *label == "#" {
            format!("# {number}")
        } else {
            format!("{label} {number}")
        }
    });
    let photo_a = hash_words(&[zpid, 1]);
    let photo_b = hash_words(&[zpid, 2]);
    let property_id = &ids.realtor_property_id;
    let (pid_head, pid_tail) = property_id.split_at(property_id.len().min(5));
    let (street_dir_prefix, street_name, street_suffix, street_dir_suffix) =
        street_parts(&address.street);
    Derived {
        realtor_href: format!(
            "https://www.realtor.com/realestateandhomes-detail/{}_{}_{}_{}_M{pid_head}-{pid_tail}",
            dashed(&line, LetterCase::Kept),
            dashed(profile.city, LetterCase::Kept),
            profile.state,
            address.zip
        ),
        realtor_photo: format!(
            "https://ap.rdcpix.com/{}l-m{}s.jpg",
            hex32(photo_b, photo_a),
            photo_a % 10_000_000_000
        ),
        zillow_img_src: format!(
            "https://photos.zillowstatic.com/fp/{}-p_e.jpg",
            hex32(photo_a, photo_b)
        ),
        line,
        zillow_address,
        zillow_detail_url,
        zillow_unit,
        street_dir_prefix,
        street_name,
        street_suffix,
        street_dir_suffix,
    }
}

/// Zillow's address of a listing and its detail page's path: the street line, or, for an
/// undisclosed address, the city alone.
fn zillow_address_and_url(
    profile: &MarketProfile,
    address: &Address,
    zpid: u64,
    undisclosed: bool,
) -> (String, String) {
    let place = format!("{}, {} {}", profile.city, profile.state, address.zip);
    let detail_url = |words: &str| {
        format!(
            "/homedetails/{}/{zpid}_zpid/",
            dashed(words, LetterCase::Kept)
        )
    };
    if undisclosed {
        return (
            format!("(undisclosed Address), {place}"),
            detail_url(&format!(
                "{} {} {}",
                profile.city, profile.state, address.zip
            )),
        );
    }
    let street = zillow_street(address);
    (
        format!("{street}, {place}"),
        detail_url(&format!(
            "{street} {} {} {}",
            profile.city, profile.state, address.zip
        )),
    )
}

/// The street line as Zillow writes it: the unit's label in capitals (`#` kept).
fn zillow_street(address: &Address) -> String {
    match &address.unit {
        Some((label, number)) => {
            let label = if *label == "#" {
                "#".to_owned()
            } else {
                label.to_uppercase()
            };
            format!(
                "{} {} {label} {number}",
                address.street_number, address.street
            )
        }
        None => format!("{} {}", address.street_number, address.street),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::builtin_markets;
    use crate::random::stream;

    #[test]
    fn nice_prices_look_like_asking_prices() {
        assert_eq!(nice_price(84_321.0, true), 83_900);
        assert_eq!(nice_price(452_000.0, false), 450_000);
        assert_eq!(nice_price(452_000.0, true), 449_900);
        assert_eq!(nice_price(1_648_000.0, true), 1_649_000);
        assert_eq!(nice_price(14_930_000.0, true), 14_800_000);
        assert_eq!(nice_price(10.0, false), 1_000);
    }

    #[test]
    fn cuts_go_down_and_rises_go_up() {
        let mut rng = stream(&[5]);
        for old in [1_000u64, 84_900, 229_900, 469_900, 1_649_000, 14_900_000] {
            for _ in 0..200 {
                let fraction = cut_fraction(&mut rng);
                let cut = cut_price(old, fraction, charm(&mut rng));
                assert!(cut < old && cut > 0, "{old} -> {cut}");
                let rise = raise_price(old, rise_fraction(&mut rng), charm(&mut rng));
                assert!(rise > old, "{old} -> {rise}");
            }
        }
    }

    #[test]
    fn cut_sizes_are_mostly_two_to_ten_percent_with_a_deep_tail() {
        let mut rng = stream(&[11]);
        let fractions: Vec<f64> = (0..10_000).map(|_| cut_fraction(&mut rng)).collect();
        let share = |low: f64, high: f64| {
            fractions
                .iter()
                .filter(|f| (low..high).contains(*f))
                .count() as f64
                / 10_000.0
        };
        assert!(share(0.02, 0.10) > 0.70, "{}", share(0.02, 0.10));
        assert!(
            (0.07..0.13).contains(&share(0.15, 1.0)),
            "{}",
            share(0.15, 1.0)
        );
    }

    #[test]
    fn street_parts_split_directions_and_suffixes() {
        assert_eq!(
            street_parts("N Dale Mabry Hwy"),
            (
                Some("N".into()),
                "Dale Mabry".into(),
                Some("Hwy".into()),
                None
            )
        );
        assert_eq!(
            street_parts("1st Ave N"),
            (None, "1st".into(), Some("Ave".into()), Some("N".into()))
        );
        assert_eq!(
            street_parts("Broadway"),
            (None, "Broadway".into(), None, None)
        );
        assert_eq!(
            street_parts("Peachtree St NE"),
            (
                None,
                "Peachtree".into(),
                Some("St".into()),
                Some("NE".into())
            )
        );
    }

    #[test]
    fn listings_are_plausible_and_addresses_unique() {
        let profile = &builtin_markets()[0];
        let zips = zip_areas(profile);
        let ctx = MarketContext {
            seed: 1,
            profile,
            builtin_index: 0,
            key: "nashville-tn",
            zips: &zips,
            price_scale: price_scale(profile, &zips),
        };
        let mut rng = stream(&[1]);
        let mut used = HashSet::new();
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let listings: Vec<SimListing> = (0..2_000)
            .map(|serial| create_listing(&ctx, &mut rng, serial, at, &mut used))
            .collect();
        let mut lines = HashSet::new();
        let mut zpids = HashSet::new();
        for listing in &listings {
            assert!(lines.insert(listing.street_line().to_owned()));
            assert!(zpids.insert(listing.zpid));
            assert!(listing.list_price > 0);
            assert!(profile.zips.contains(&listing.address.zip));
            assert!((listing.latitude - profile.latitude).abs() < 0.3);
            assert!(
                listing
                    .zillow_address()
                    .ends_with(&format!("Nashville, TN {}", listing.address.zip))
            );
            if listing.property_type == PropertyType::Land {
                assert!(listing.beds.is_none() && listing.living_area_sqft.is_none());
            } else {
                assert!(listing.baths_full >= 1);
            }
        }
        let mut prices: Vec<u64> = listings.iter().map(|l| l.list_price).collect();
        prices.sort_unstable();
        let median = prices[prices.len() / 2] as f64;
        let target = profile.median_list_price as f64;
        assert!(
            (median / target - 1.0).abs() < 0.3,
            "median {median} vs {target}"
        );
    }
}
