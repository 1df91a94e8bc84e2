//! Markets as scopes: a geography and a property type, their keys, and the scopes a listing
//! counts in.

use std::sync::Arc;

use crate::listing::{MarketKey, PropertyType};

/// A geography. Its name is shared: a batch names each market in every contribution to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Geo {
    CityState(Arc<str>),
    Zip(Arc<str>),
}

/// One market: a geography and a property type (`None` = all types).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub geo: Geo,
    pub property_type: Option<PropertyType>,
}

impl Ord for Scope {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let type_name = |s: &Self| s.property_type.map(property_type_name);
        self.geo
            .cmp(&other.geo)
            .then_with(|| type_name(self).cmp(&type_name(other)))
    }
}

impl PartialOrd for Scope {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Scope {
    /// The partition key of the scope's items: `city#nashville-tn#all`,
    /// `zip#37201#single_family`.
    pub fn key(&self) -> String {
        let (kind, name) = match &self.geo {
            Geo::CityState(c) => ("city", &**c),
            Geo::Zip(z) => ("zip", &**z),
        };
        scope_key(kind, name, self.property_type)
    }

    /// The all-types city scope of a market key (what `realty report --market` names).
    pub fn city(city_state: &str) -> Self {
        Self {
            geo: Geo::CityState(Arc::from(city_state)),
            property_type: None,
        }
    }
}

/// The key of a city market ([`Scope::key`]), without building its scope.
pub fn city_scope_key(city_state: &str, property_type: Option<PropertyType>) -> String {
    scope_key("city", city_state, property_type)
}

fn scope_key(kind: &str, name: &str, property_type: Option<PropertyType>) -> String {
    let property_type = property_type.map_or("all", property_type_name);
    // Sized once (`format!` grows its buffer): every market of every batch, and two city
    // markets of each listing judged, are looked up by key.
    [kind, name, property_type].join("#")
}

/// The snake_case name of a property type, as in the listing JSON.
pub fn property_type_name(t: PropertyType) -> &'static str {
    match t {
        PropertyType::SingleFamily => "single_family",
        PropertyType::Condo => "condo",
        PropertyType::Townhouse => "townhouse",
        PropertyType::MultiFamily => "multi_family",
        PropertyType::Land => "land",
        PropertyType::Apartment => "apartment",
        PropertyType::Manufactured => "manufactured",
        PropertyType::Other => "other",
    }
}

/// The ZIP geography of a market: the postal code in the US, `<country>/<code>` elsewhere
/// (`fr/75001`), so a postal code abroad never shares the market of the US ZIP it spells
/// (Paris 75001 is not Addison, TX).
pub fn zip_geo(market: &MarketKey) -> Option<Arc<str>> {
    let zip = market.zip.as_deref()?;
    Some(match market.city_state.split_once('/') {
        Some((country, _)) => Arc::from([country, zip].join("/")),
        None => Arc::from(zip),
    })
}

/// The scopes a listing in `city_state` (and `zip`) of `property_type` counts in: each
/// geography across types, then for its type.
pub fn scopes_of(
    city_state: Arc<str>,
    zip: Option<Arc<str>>,
    property_type: PropertyType,
) -> Vec<Scope> {
    let mut out = Vec::with_capacity(4);
    for geo in std::iter::once(Geo::CityState(city_state)).chain(zip.map(Geo::Zip)) {
        out.push(Scope {
            geo: geo.clone(),
            property_type: None,
        });
        out.push(Scope {
            geo,
            property_type: Some(property_type),
        });
    }
    out
}
