//! The Moroccan cities the portals are simulated for.

use crate::slug::slug;

/// A Moroccan city the portals are simulated for. Price levels are rounded public figures
/// of 2024-2025 asking prices; they shape the draws, they are not data about real ads.
#[derive(Debug, Clone, PartialEq)]
pub struct MoroccanCity {
    /// As the portals write it (`Casablanca`).
    pub name: &'static str,
    /// Neighbourhoods as the portals name them.
    pub neighbourhoods: &'static [&'static str],
    /// Median asking price of a flat, dirhams per square metre.
    pub sale_mad_per_sqm: f64,
    /// Median monthly rent of a flat, dirhams per square metre.
    pub rent_mad_per_sqm: f64,
    /// The city's searches' size against the configured ads per search (Casablanca's are
    /// the largest).
    pub size: f64,
}

impl MoroccanCity {
    /// The market key the pipeline uses (`ma/casablanca`).
    pub fn market_key(&self) -> String {
        format!("ma/{}", slug(self.name))
    }

    /// The city's slug in the portals' search URLs (`casablanca`).
    pub fn url_slug(&self) -> String {
        slug(self.name)
    }
}

pub(super) const MOROCCAN_CITIES: &[MoroccanCity] = &[
    MoroccanCity {
        name: "Casablanca",
        neighbourhoods: &[
            "Maârif",
            "Gauthier",
            "Racine",
            "Bourgogne Ouest",
            "Ain Diab",
            "Les princesses",
            "Sidi Maârouf",
            "Aïn Sebaâ",
            "CIL (Hay Salam)",
            "Casablanca Finance City",
            "Oasis",
            "Hay Hassani",
        ],
        sale_mad_per_sqm: 13_500.0,
        rent_mad_per_sqm: 95.0,
        size: 1.0,
    },
    MoroccanCity {
        name: "Rabat",
        neighbourhoods: &[
            "Agdal",
            "Hay Riad",
            "Souissi",
            "Hassan - Centre Ville",
            "Les Orangers",
            "Océan",
            "Aviation",
        ],
        sale_mad_per_sqm: 12_500.0,
        rent_mad_per_sqm: 85.0,
        size: 0.6,
    },
    MoroccanCity {
        name: "Marrakech",
        neighbourhoods: &[
            "Guéliz",
            "Hivernage",
            "Route de l'Ourika",
            "Targa",
            "Médina",
            "Palmeraie",
            "Route de Casablanca",
        ],
        sale_mad_per_sqm: 10_500.0,
        rent_mad_per_sqm: 70.0,
        size: 0.3,
    },
];

/// The Moroccan cities the portals are simulated for.
pub fn moroccan_cities() -> &'static [MoroccanCity] {
    MOROCCAN_CITIES
}
