//! The built-in markets: US cities with their ZIP codes and price levels.
//!
//! Figures are rounded public levels of 2024-2025 (median list price, typical home size and
//! lot, median days on market, gross rental yield); they shape the simulated distributions,
//! they are not data about real listings.

use crate::slug::slug;

/// Share of each property type in a market's listings, in [`crate::PropertyType::ALL`]
/// order: single family, condo, townhouse, multi family, land, manufactured.
pub type TypeMix = [f64; 6];

/// One simulated market.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketProfile {
    /// City as the APIs write it (`Nashville`).
    pub city: &'static str,
    /// Two-letter state code (`TN`).
    pub state: &'static str,
    /// State name, as Realtor.com writes `location.address.state`.
    pub state_name: &'static str,
    /// County FIPS code (Realtor.com `location.county.fips_code`).
    pub county_fips: &'static str,
    /// City centre, WGS84 degrees.
    pub latitude: f64,
    pub longitude: f64,
    /// Standard-time offset from UTC; the market's activity follows local office hours.
    pub utc_offset_hours: i32,
    /// Median list price of the market, dollars.
    pub median_list_price: u64,
    /// Median living area of a single-family home, square feet.
    pub median_sqft: u32,
    /// Median lot of a single-family home, square feet.
    pub median_lot_sqft: u32,
    /// Median days from listing to pending or removal; sets how fast homes sell.
    pub median_days_on_market: u32,
    /// Typical gross rental yield (12 x monthly rent / price).
    pub gross_rent_yield: f64,
    pub type_mix: TypeMix,
    /// Prefix of RESO `ListingKey`s, standing for the local MLS.
    pub mls_prefix: &'static str,
    /// RESO `OriginatingSystemName`.
    pub mls_name: &'static str,
    /// Years homes were built in.
    pub year_built: (u16, u16),
    pub zips: &'static [&'static str],
    /// Streets found only in this market; generic street names are added to them.
    pub local_streets: &'static [&'static str],
}

impl MarketProfile {
    /// The market key: lower-case city and state joined by `-`, other characters folded to
    /// `-` (`nashville-tn`, `st-louis-mo`), the key the pipeline uses.
    pub fn key(&self) -> String {
        market_key(self.city, self.state)
    }

    /// The `location` a Zillow search names the market by (`Nashville, TN`).
    pub fn zillow_location(&self) -> String {
        format!("{}, {}", self.city, self.state)
    }
}

/// The key of the market of a city and state (`"St. Louis", "MO"` -> `st-louis-mo`).
pub fn market_key(city: &str, state: &str) -> String {
    format!("{}-{}", slug(city), slug(state))
}

/// Every built-in market. The position of a market in this list is part of its listings'
/// ids, so markets are only ever appended.
pub fn builtin_markets() -> &'static [MarketProfile] {
    BUILTIN_MARKETS
}

/// Street names used in every market (suffix included).
pub(crate) const GENERIC_STREETS: &[&str] = &[
    "Oak St",
    "Maple Ave",
    "Elm St",
    "Cedar Ln",
    "Pine St",
    "Walnut St",
    "Park Ave",
    "Lake Dr",
    "Hill Rd",
    "Forest Dr",
    "Meadow Ln",
    "Washington St",
    "Lincoln Ave",
    "Jefferson St",
    "Madison Ave",
    "Franklin St",
    "Highland Ave",
    "Ridge Rd",
    "Valley View Dr",
    "Willow Ct",
    "Birch Ln",
    "Chestnut St",
    "Spruce St",
    "Hickory Ln",
    "Dogwood Dr",
    "Magnolia Ave",
    "Sycamore St",
    "Cherry St",
    "Poplar Ave",
    "Laurel Ave",
    "Linden Ave",
    "Prospect Ave",
    "Grove St",
    "Center St",
    "Church St",
    "Mill Rd",
    "School St",
    "Spring St",
    "Summit Ave",
    "Woodland Ave",
    "Fairview Ave",
    "Garden St",
    "Orchard Ln",
    "River Rd",
    "Kingston Pl",
    "Essex Ct",
    "Brookside Dr",
    "Greenwood Ave",
    "Hawthorne St",
    "Rosewood Ave",
    "Juniper Way",
    "Aspen Way",
    "Stonegate Ct",
    "Heritage Way",
    "Windsor Dr",
    "Belmont Ave",
    "Clifton Ave",
    "Ashland Ave",
    "Sunset Ave",
    "Pleasant St",
];

const SFR_HEAVY: TypeMix = [0.68, 0.12, 0.08, 0.05, 0.05, 0.02];

static BUILTIN_MARKETS: &[MarketProfile] = &[
    MarketProfile {
        city: "Nashville",
        state: "TN",
        state_name: "Tennessee",
        county_fips: "47037",
        latitude: 36.1627,
        longitude: -86.7816,
        utc_offset_hours: -6,
        median_list_price: 560_000,
        median_sqft: 2_000,
        median_lot_sqft: 8_700,
        median_days_on_market: 45,
        gross_rent_yield: 0.055,
        type_mix: [0.60, 0.18, 0.12, 0.03, 0.05, 0.02],
        mls_prefix: "RTC",
        mls_name: "RealTracs",
        year_built: (1925, 2025),
        zips: &[
            "37201", "37203", "37204", "37205", "37206", "37207", "37208", "37209", "37210",
            "37211", "37212", "37214", "37215", "37216", "37217", "37218", "37219", "37220",
            "37221",
        ],
        local_streets: &[
            "Charlotte Pike",
            "Nolensville Pike",
            "Gallatin Pike",
            "Belmont Blvd",
            "Broadway",
            "Church St",
            "1st Ave N",
            "Murfreesboro Pike",
            "Granny White Pike",
            "Dickerson Pike",
        ],
    },
    MarketProfile {
        city: "Syracuse",
        state: "NY",
        state_name: "New York",
        county_fips: "36067",
        latitude: 43.0481,
        longitude: -76.1474,
        utc_offset_hours: -5,
        median_list_price: 210_000,
        median_sqft: 1_650,
        median_lot_sqft: 6_000,
        median_days_on_market: 30,
        gross_rent_yield: 0.095,
        type_mix: [0.68, 0.04, 0.02, 0.20, 0.05, 0.01],
        mls_prefix: "S",
        mls_name: "CNYIS",
        year_built: (1890, 2020),
        zips: &[
            "13202", "13203", "13204", "13205", "13206", "13207", "13208", "13210", "13214",
            "13215", "13219", "13224",
        ],
        local_streets: &[
            "Onondaga Ave",
            "Cortland Ave",
            "Court St",
            "Kasson Rd",
            "W Seneca Tpke",
            "James St",
            "Salina St",
            "Teall Ave",
            "Midland Ave",
        ],
    },
    MarketProfile {
        city: "Austin",
        state: "TX",
        state_name: "Texas",
        county_fips: "48453",
        latitude: 30.2672,
        longitude: -97.7431,
        utc_offset_hours: -6,
        median_list_price: 575_000,
        median_sqft: 1_950,
        median_lot_sqft: 7_800,
        median_days_on_market: 65,
        gross_rent_yield: 0.05,
        type_mix: [0.66, 0.16, 0.07, 0.04, 0.05, 0.02],
        mls_prefix: "ACT",
        mls_name: "ACTRIS",
        year_built: (1940, 2025),
        zips: &[
            "78701", "78702", "78703", "78704", "78705", "78721", "78722", "78723", "78727",
            "78731", "78741", "78744", "78745", "78746", "78748", "78749", "78751", "78752",
            "78756", "78757", "78758", "78759",
        ],
        local_streets: &[
            "Burnet Rd",
            "S Lamar Blvd",
            "Manchaca Rd",
            "Cesar Chavez St",
            "Guadalupe St",
            "Riverside Dr",
            "Slaughter Ln",
            "William Cannon Dr",
        ],
    },
    MarketProfile {
        city: "San Francisco",
        state: "CA",
        state_name: "California",
        county_fips: "06075",
        latitude: 37.7749,
        longitude: -122.4194,
        utc_offset_hours: -8,
        median_list_price: 1_250_000,
        median_sqft: 1_600,
        median_lot_sqft: 2_500,
        median_days_on_market: 28,
        gross_rent_yield: 0.035,
        type_mix: [0.42, 0.36, 0.06, 0.13, 0.02, 0.01],
        mls_prefix: "SF",
        mls_name: "SFARMLS",
        year_built: (1900, 2022),
        zips: &[
            "94102", "94103", "94105", "94107", "94108", "94109", "94110", "94112", "94114",
            "94115", "94116", "94117", "94118", "94121", "94122", "94123", "94124", "94127",
            "94131", "94132", "94133", "94134",
        ],
        local_streets: &[
            "Valencia St",
            "Geary Blvd",
            "Irving St",
            "Judah St",
            "Noriega St",
            "Divisadero St",
            "Fillmore St",
            "Mission St",
            "Castro St",
            "Taraval St",
        ],
    },
    MarketProfile {
        city: "Cleveland",
        state: "OH",
        state_name: "Ohio",
        county_fips: "39035",
        latitude: 41.4993,
        longitude: -81.6944,
        utc_offset_hours: -5,
        median_list_price: 135_000,
        median_sqft: 1_400,
        median_lot_sqft: 5_200,
        median_days_on_market: 40,
        gross_rent_yield: 0.11,
        type_mix: [0.70, 0.05, 0.02, 0.16, 0.06, 0.01],
        mls_prefix: "NEO",
        mls_name: "NORMLS",
        year_built: (1890, 2015),
        zips: &[
            "44102", "44103", "44104", "44105", "44106", "44108", "44109", "44110", "44111",
            "44113", "44114", "44115", "44119", "44120", "44127", "44128", "44135",
        ],
        local_streets: &[
            "Lorain Ave",
            "Detroit Ave",
            "Euclid Ave",
            "Superior Ave",
            "St Clair Ave",
            "Fulton Rd",
            "Kinsman Rd",
            "Broadway Ave",
        ],
    },
    MarketProfile {
        city: "Miami",
        state: "FL",
        state_name: "Florida",
        county_fips: "12086",
        latitude: 25.7617,
        longitude: -80.1918,
        utc_offset_hours: -5,
        median_list_price: 625_000,
        median_sqft: 1_750,
        median_lot_sqft: 6_500,
        median_days_on_market: 75,
        gross_rent_yield: 0.055,
        type_mix: [0.33, 0.47, 0.08, 0.05, 0.05, 0.02],
        mls_prefix: "A",
        mls_name: "MIAMI",
        year_built: (1935, 2025),
        zips: &[
            "33125", "33126", "33127", "33128", "33129", "33130", "33131", "33132", "33133",
            "33134", "33135", "33136", "33137", "33138", "33142", "33144", "33145", "33150",
            "33155", "33165", "33175",
        ],
        local_streets: &[
            "Brickell Ave",
            "Biscayne Blvd",
            "Coral Way",
            "SW 8th St",
            "NW 7th Ave",
            "Flagler St",
            "Bird Rd",
            "Calle Ocho",
        ],
    },
    MarketProfile {
        city: "Denver",
        state: "CO",
        state_name: "Colorado",
        county_fips: "08031",
        latitude: 39.7392,
        longitude: -104.9903,
        utc_offset_hours: -7,
        median_list_price: 625_000,
        median_sqft: 1_800,
        median_lot_sqft: 6_300,
        median_days_on_market: 40,
        gross_rent_yield: 0.05,
        type_mix: [0.58, 0.22, 0.10, 0.05, 0.03, 0.02],
        mls_prefix: "REC",
        mls_name: "REcolorado",
        year_built: (1900, 2025),
        zips: &[
            "80202", "80203", "80204", "80205", "80206", "80207", "80209", "80210", "80211",
            "80212", "80218", "80219", "80220", "80223", "80224", "80227", "80230", "80231",
            "80237", "80238", "80239",
        ],
        local_streets: &[
            "Colfax Ave",
            "Federal Blvd",
            "Broadway",
            "Speer Blvd",
            "Downing St",
            "Tennyson St",
            "Evans Ave",
        ],
    },
    MarketProfile {
        city: "Phoenix",
        state: "AZ",
        state_name: "Arizona",
        county_fips: "04013",
        latitude: 33.4484,
        longitude: -112.0740,
        utc_offset_hours: -7,
        median_list_price: 465_000,
        median_sqft: 1_750,
        median_lot_sqft: 7_200,
        median_days_on_market: 55,
        gross_rent_yield: 0.06,
        type_mix: [0.70, 0.10, 0.07, 0.03, 0.05, 0.05],
        mls_prefix: "ARM",
        mls_name: "ARMLS",
        year_built: (1950, 2025),
        zips: &[
            "85003", "85004", "85006", "85007", "85008", "85009", "85012", "85013", "85014",
            "85015", "85016", "85018", "85020", "85021", "85022", "85028", "85032", "85040",
            "85041", "85042", "85044", "85048", "85050", "85051",
        ],
        local_streets: &[
            "Camelback Rd",
            "Indian School Rd",
            "Thomas Rd",
            "McDowell Rd",
            "Cactus Rd",
            "Baseline Rd",
            "N 7th St",
            "E Bell Rd",
        ],
    },
    MarketProfile {
        city: "Seattle",
        state: "WA",
        state_name: "Washington",
        county_fips: "53033",
        latitude: 47.6062,
        longitude: -122.3321,
        utc_offset_hours: -8,
        median_list_price: 875_000,
        median_sqft: 1_800,
        median_lot_sqft: 5_000,
        median_days_on_market: 22,
        gross_rent_yield: 0.04,
        type_mix: [0.52, 0.28, 0.12, 0.05, 0.02, 0.01],
        mls_prefix: "NWM",
        mls_name: "NWMLS",
        year_built: (1905, 2025),
        zips: &[
            "98101", "98102", "98103", "98104", "98105", "98106", "98107", "98108", "98109",
            "98112", "98115", "98116", "98117", "98118", "98119", "98121", "98122", "98125",
            "98126", "98133", "98136", "98144", "98199",
        ],
        local_streets: &[
            "Aurora Ave N",
            "Rainier Ave S",
            "California Ave SW",
            "Greenwood Ave N",
            "Eastlake Ave E",
            "NE 65th St",
            "Queen Anne Ave N",
        ],
    },
    MarketProfile {
        city: "Chicago",
        state: "IL",
        state_name: "Illinois",
        county_fips: "17031",
        latitude: 41.8781,
        longitude: -87.6298,
        utc_offset_hours: -6,
        median_list_price: 375_000,
        median_sqft: 1_500,
        median_lot_sqft: 3_750,
        median_days_on_market: 35,
        gross_rent_yield: 0.075,
        type_mix: [0.42, 0.38, 0.05, 0.13, 0.02, 0.0],
        mls_prefix: "MRD",
        mls_name: "MRED",
        year_built: (1890, 2025),
        zips: &[
            "60601", "60605", "60607", "60608", "60609", "60610", "60611", "60613", "60614",
            "60616", "60617", "60618", "60619", "60620", "60622", "60625", "60629", "60630",
            "60632", "60638", "60640", "60647", "60651", "60657",
        ],
        local_streets: &[
            "N Milwaukee Ave",
            "N Clark St",
            "W Belmont Ave",
            "S Halsted St",
            "W Fullerton Ave",
            "N Sheridan Rd",
            "S Pulaski Rd",
            "W Irving Park Rd",
        ],
    },
    MarketProfile {
        city: "Atlanta",
        state: "GA",
        state_name: "Georgia",
        county_fips: "13121",
        latitude: 33.7490,
        longitude: -84.3880,
        utc_offset_hours: -5,
        median_list_price: 450_000,
        median_sqft: 1_900,
        median_lot_sqft: 9_000,
        median_days_on_market: 45,
        gross_rent_yield: 0.065,
        type_mix: [0.60, 0.20, 0.10, 0.03, 0.06, 0.01],
        mls_prefix: "FM",
        mls_name: "FMLS",
        year_built: (1920, 2025),
        zips: &[
            "30303", "30305", "30306", "30307", "30308", "30309", "30310", "30311", "30312",
            "30313", "30314", "30315", "30316", "30317", "30318", "30319", "30324", "30326",
            "30327", "30331", "30342",
        ],
        local_streets: &[
            "Peachtree St NE",
            "Ponce De Leon Ave",
            "Piedmont Ave NE",
            "Moreland Ave SE",
            "Cascade Rd SW",
            "Howell Mill Rd NW",
            "Roswell Rd",
        ],
    },
    MarketProfile {
        city: "Detroit",
        state: "MI",
        state_name: "Michigan",
        county_fips: "26163",
        latitude: 42.3314,
        longitude: -83.0458,
        utc_offset_hours: -5,
        median_list_price: 95_000,
        median_sqft: 1_300,
        median_lot_sqft: 4_400,
        median_days_on_market: 45,
        gross_rent_yield: 0.14,
        type_mix: [0.78, 0.04, 0.02, 0.08, 0.07, 0.01],
        mls_prefix: "RCO",
        mls_name: "Realcomp",
        year_built: (1900, 2010),
        zips: &[
            "48201", "48202", "48203", "48204", "48205", "48206", "48207", "48208", "48209",
            "48210", "48213", "48214", "48215", "48219", "48221", "48223", "48224", "48227",
            "48228", "48234", "48235",
        ],
        local_streets: &[
            "Woodward Ave",
            "Gratiot Ave",
            "Grand River Ave",
            "Michigan Ave",
            "Livernois Ave",
            "W 7 Mile Rd",
            "E Jefferson Ave",
        ],
    },
    MarketProfile {
        city: "Columbus",
        state: "OH",
        state_name: "Ohio",
        county_fips: "39049",
        latitude: 39.9612,
        longitude: -82.9988,
        utc_offset_hours: -5,
        median_list_price: 310_000,
        median_sqft: 1_650,
        median_lot_sqft: 7_000,
        median_days_on_market: 30,
        gross_rent_yield: 0.075,
        type_mix: SFR_HEAVY,
        mls_prefix: "CLB",
        mls_name: "Columbus REALTORS",
        year_built: (1910, 2025),
        zips: &[
            "43201", "43202", "43204", "43205", "43206", "43207", "43209", "43211", "43212",
            "43214", "43215", "43219", "43221", "43223", "43224", "43227", "43229",
        ],
        local_streets: &[
            "N High St",
            "E Broad St",
            "Cleveland Ave",
            "Parsons Ave",
            "Sullivant Ave",
            "Morse Rd",
        ],
    },
    MarketProfile {
        city: "Charlotte",
        state: "NC",
        state_name: "North Carolina",
        county_fips: "37119",
        latitude: 35.2271,
        longitude: -80.8431,
        utc_offset_hours: -5,
        median_list_price: 440_000,
        median_sqft: 2_000,
        median_lot_sqft: 9_500,
        median_days_on_market: 40,
        gross_rent_yield: 0.06,
        type_mix: [0.68, 0.10, 0.12, 0.02, 0.06, 0.02],
        mls_prefix: "CAR",
        mls_name: "Canopy MLS",
        year_built: (1930, 2025),
        zips: &[
            "28202", "28203", "28204", "28205", "28206", "28207", "28208", "28209", "28210",
            "28211", "28212", "28213", "28215", "28216", "28217", "28226", "28227", "28262",
            "28269", "28270", "28273", "28277",
        ],
        local_streets: &[
            "Providence Rd",
            "Central Ave",
            "The Plaza",
            "Park Rd",
            "Sharon Amity Rd",
            "Albemarle Rd",
            "Beatties Ford Rd",
        ],
    },
    MarketProfile {
        city: "Tampa",
        state: "FL",
        state_name: "Florida",
        county_fips: "12057",
        latitude: 27.9506,
        longitude: -82.4572,
        utc_offset_hours: -5,
        median_list_price: 430_000,
        median_sqft: 1_750,
        median_lot_sqft: 7_000,
        median_days_on_market: 55,
        gross_rent_yield: 0.065,
        type_mix: [0.62, 0.16, 0.09, 0.03, 0.06, 0.04],
        mls_prefix: "TB",
        mls_name: "Stellar MLS",
        year_built: (1925, 2025),
        zips: &[
            "33602", "33603", "33604", "33605", "33606", "33607", "33609", "33610", "33611",
            "33612", "33613", "33614", "33615", "33616", "33617", "33618", "33619", "33624",
            "33625", "33626", "33629", "33647",
        ],
        local_streets: &[
            "Bayshore Blvd",
            "N Florida Ave",
            "W Kennedy Blvd",
            "N Dale Mabry Hwy",
            "E Fowler Ave",
            "W Gandy Blvd",
            "N Armenia Ave",
        ],
    },
    MarketProfile {
        city: "Boston",
        state: "MA",
        state_name: "Massachusetts",
        county_fips: "25025",
        latitude: 42.3601,
        longitude: -71.0589,
        utc_offset_hours: -5,
        median_list_price: 850_000,
        median_sqft: 1_500,
        median_lot_sqft: 4_000,
        median_days_on_market: 30,
        gross_rent_yield: 0.045,
        type_mix: [0.28, 0.48, 0.05, 0.17, 0.01, 0.01],
        mls_prefix: "PIN",
        mls_name: "MLS PIN",
        year_built: (1880, 2024),
        zips: &[
            "02108", "02109", "02110", "02111", "02113", "02114", "02115", "02116", "02118",
            "02119", "02120", "02121", "02122", "02124", "02125", "02126", "02127", "02128",
            "02129", "02130", "02131", "02132", "02134", "02135", "02136",
        ],
        local_streets: &[
            "Commonwealth Ave",
            "Beacon St",
            "Tremont St",
            "Dorchester Ave",
            "Centre St",
            "Washington St",
            "Boylston St",
            "Columbus Ave",
        ],
    },
    MarketProfile {
        city: "St. Louis",
        state: "MO",
        state_name: "Missouri",
        county_fips: "29510",
        latitude: 38.6270,
        longitude: -90.1994,
        utc_offset_hours: -6,
        median_list_price: 185_000,
        median_sqft: 1_400,
        median_lot_sqft: 4_800,
        median_days_on_market: 35,
        gross_rent_yield: 0.10,
        type_mix: [0.70, 0.08, 0.03, 0.12, 0.06, 0.01],
        mls_prefix: "MAR",
        mls_name: "MARIS",
        year_built: (1890, 2020),
        zips: &[
            "63101", "63102", "63103", "63104", "63106", "63107", "63108", "63109", "63110",
            "63111", "63112", "63113", "63115", "63116", "63118", "63139",
        ],
        local_streets: &[
            "Gravois Ave",
            "S Grand Blvd",
            "Delmar Blvd",
            "Chippewa St",
            "Hampton Ave",
            "Natural Bridge Ave",
            "Lindell Blvd",
        ],
    },
    MarketProfile {
        city: "Los Angeles",
        state: "CA",
        state_name: "California",
        county_fips: "06037",
        latitude: 34.0522,
        longitude: -118.2437,
        utc_offset_hours: -8,
        median_list_price: 1_150_000,
        median_sqft: 1_650,
        median_lot_sqft: 6_500,
        median_days_on_market: 45,
        gross_rent_yield: 0.04,
        type_mix: [0.55, 0.22, 0.07, 0.12, 0.03, 0.01],
        mls_prefix: "CRM",
        mls_name: "CRMLS",
        year_built: (1910, 2025),
        zips: &[
            "90004", "90005", "90006", "90007", "90008", "90011", "90012", "90016", "90019",
            "90024", "90025", "90026", "90027", "90028", "90029", "90034", "90035", "90036",
            "90039", "90041", "90042", "90045", "90046", "90049", "90064", "90065", "90066",
        ],
        local_streets: &[
            "S Berendo St",
            "N Catalina St",
            "N Normandie Ave",
            "Rosewood Ave",
            "N Alexandria Ave",
            "S Arden Blvd",
            "Sunset Blvd",
            "W Pico Blvd",
            "Venice Blvd",
        ],
    },
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn keys_follow_the_pipeline_rule() {
        assert_eq!(market_key("Nashville", "TN"), "nashville-tn");
        assert_eq!(market_key("St. Louis", "MO"), "st-louis-mo");
        assert_eq!(market_key("San Francisco", "CA"), "san-francisco-ca");
    }

    #[test]
    fn builtin_markets_are_consistent() {
        let mut keys = BTreeSet::new();
        let mut zips = BTreeSet::new();
        for market in builtin_markets() {
            assert!(keys.insert(market.key()), "duplicate {}", market.key());
            let mix_total: f64 = market.type_mix.iter().sum();
            assert!(
                (mix_total - 1.0).abs() < 1e-9,
                "{}: mix {mix_total}",
                market.key()
            );
            assert!(market.zips.len() >= 10, "{}", market.key());
            for zip in market.zips {
                assert!(zip.len() == 5 && zip.bytes().all(|b| b.is_ascii_digit()));
                assert!(zips.insert(*zip), "zip {zip} in two markets");
            }
            assert!(market.year_built.0 < market.year_built.1);
            assert_eq!(market.state.len(), 2);
        }
        for key in [
            "nashville-tn",
            "syracuse-ny",
            "austin-tx",
            "san-francisco-ca",
            "cleveland-oh",
            "miami-fl",
        ] {
            assert!(keys.contains(key), "{key}");
        }
    }
}
