//! The property portals' adapters over real saved pages (fixtures/README.md says where each
//! comes from), and over hostile ones.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use chrono::{DateTime, TimeZone as _, Utc};
use realty_model::listing::{Listing, Offer, PropertyType, SellerType, sqft_from_sqm};
use realty_model::markets::SourceKind;
use realty_sources::portal::PortalPaging;
use realty_sources::{Page, Paging, SourceError, normalize_file};

const MUBAWAB: &[u8] = include_bytes!("fixtures/mubawab_search_real_estate_for_rent_en.html");
const AVITO: &[u8] = include_bytes!("fixtures/avito_search_appartements_a_vendre.html");

fn observed_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 12, 7, 22, 11, 13)
        .single()
        .expect("a valid time")
}

fn listing<'a>(page: &'a Page, id: &str) -> &'a Listing {
    page.listings
        .iter()
        .find(|l| l.id.as_str() == id)
        .unwrap_or_else(|| {
            panic!(
                "{id} in {:?}",
                page.listings.iter().map(|l| &l.id).collect::<Vec<_>>()
            )
        })
}

fn paging(page: &Page) -> &PortalPaging {
    match &page.paging {
        Paging::Portal(paging) => paging,
        other => panic!("portal paging expected, found {other:?}"),
    }
}

#[test]
fn a_real_mubawab_search_page_reads_card_by_card() {
    let page = normalize_file(SourceKind::Mubawab, MUBAWAB, observed_at()).expect("a page");
    assert_eq!(page.rejects, [], "every card of the real page is a listing");
    assert_eq!(page.listings.len(), 4);
    assert_eq!(paging(&page).total_results, Some(17_014));

    let first = listing(&page, "mubawab:7994991");
    assert_eq!(first.offer, Offer::Rent, "the title says for rent");
    assert_eq!(first.property_type, PropertyType::Apartment);
    assert_eq!(first.price_minor, 19_000 * 100);
    assert_eq!(first.currency, "MAD");
    assert_eq!(
        first.previous_price_minor,
        Some(20_000 * 100),
        "Decreased by 1,000 DH"
    );
    assert_eq!(first.address.city, "Rabat");
    assert_eq!(
        first.address.neighbourhood.as_deref(),
        Some("Hassan - Centre Ville")
    );
    assert_eq!(first.market.city_state, "ma/rabat");
    assert_eq!(first.details.living_area_sqm, Some(150));
    assert_eq!(first.living_area_sqft, Some(sqft_from_sqm(150)));
    assert_eq!(
        (first.beds, first.baths),
        (Some(2), Some(2.0)),
        "Rooms are bedrooms"
    );
    assert_eq!(
        first.details.equipment[..4],
        ["Garden", "Terrace", "Garage", "Elevator"]
    );
    // The fixture keeps two of the slider's photos; the side column's smaller copies of
    // them are not photos of their own.
    assert_eq!(first.details.images.len(), 2);
    assert!(first.details.images[0].starts_with("https://www.mubawab-media.com/ad/7/994/991F/"));
    assert_eq!(
        first.source_url.as_deref(),
        Some(
            "https://www.mubawab.ma/en/a/7994991/apartment-for-rent-in-hassan-centre-ville-3-rooms-cellar"
        )
    );
    assert_eq!(first.on_market_date, None, "cards carry no date");

    let villa = listing(&page, "mubawab:8267682");
    assert_eq!(
        villa.property_type,
        PropertyType::SingleFamily,
        "High quality villa"
    );
    assert_eq!(villa.price_minor, 34_000 * 100);
    assert_eq!((villa.beds, villa.baths), (Some(4), Some(3.0)));
    let small = listing(&page, "mubawab:8265675");
    assert_eq!((small.beds, small.baths), (Some(1), Some(1.0)));
    assert_eq!(listing(&page, "mubawab:8267762").price_minor, 7_500 * 100);
    for listing in &page.listings {
        assert_eq!(listing.details.seller_type, None::<SellerType>);
        assert_eq!(listing.validate(), Ok(()));
    }
}

#[test]
fn a_real_avito_search_page_reads_from_its_embedded_state() {
    let observed_at = Utc
        .with_ymd_and_hms(2024, 9, 24, 23, 59, 29)
        .single()
        .expect("time");
    let page = normalize_file(SourceKind::Avito, AVITO, observed_at).expect("a page");
    // 44 entries: 35 ads and 9 new-build promotions, skipped.
    assert_eq!(paging(&page).skipped, 9);
    assert_eq!(page.record_count(), 35);
    assert_eq!(paging(&page).total_results, Some(47_581));
    assert_eq!(
        paging(&page).next_page.as_deref(),
        Some("https://www.avito.ma/fr/maroc/appartements-à_vendre?o=2")
    );
    let mut reasons: Vec<String> = page.rejects.iter().map(ToString::to_string).collect();
    reasons.sort();
    // Three ads without a price, three priced per square metre (a placeholder for a sale).
    assert_eq!(reasons.len(), 6, "{reasons:#?}");
    for id in ["55569724", "55226477", "54625315"] {
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with(&format!("avito:{id} ")) && r.contains("no price")),
            "{id}: {reasons:#?}"
        );
    }
    for id in ["37621456", "55174614", "55311174"] {
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with(&format!("avito:{id} ")) && r.contains("floor")),
            "{id}: {reasons:#?}"
        );
    }
    assert_eq!(page.listings.len(), 29);

    let gauthier = listing(&page, "avito:55569728");
    assert_eq!(
        (gauthier.offer, gauthier.property_type),
        (Offer::Sale, PropertyType::Apartment)
    );
    assert_eq!(
        (gauthier.price_minor, gauthier.currency.as_str()),
        (3_100_000 * 100, "MAD")
    );
    assert_eq!(gauthier.market.city_state, "ma/casablanca");
    assert_eq!(gauthier.address.neighbourhood.as_deref(), Some("Gauthier"));
    assert_eq!((gauthier.beds, gauthier.baths), (Some(3), Some(2.0)));
    assert_eq!(gauthier.details.living_area_sqm, Some(198));
    assert_eq!(gauthier.details.seller_type, Some(SellerType::Private));
    assert_eq!(gauthier.details.images.len(), 8);
    assert_eq!(
        gauthier.on_market_date,
        Some(observed_at.date_naive()),
        "il y a 6 minutes"
    );
    assert!(
        gauthier
            .source_url
            .as_deref()
            .is_some_and(|u| u.ends_with("_55569728.htm"))
    );

    let agency = listing(&page, "avito:55565045");
    assert_eq!(agency.details.seller_type, Some(SellerType::Professional));
    assert_eq!(agency.market.city_state, "ma/marrakech");
    assert_eq!(agency.details.living_area_sqm, Some(85));
    let no_size = listing(&page, "avito:55559090");
    assert_eq!(
        (no_size.living_area_sqft, no_size.details.living_area_sqm),
        (None, None)
    );
    // "Toute la ville" is no neighbourhood.
    assert_eq!(listing(&page, "avito:54401684").address.neighbourhood, None);
    assert_eq!(
        listing(&page, "avito:54401684").market.city_state,
        "ma/dar-bouazza"
    );
    for listing in &page.listings {
        assert_eq!(listing.validate(), Ok(()));
    }
}

/// The same ads where the pages of 2026 put them (`componentProps.ads`, with
/// `totalListingAds`), and an ad of a detail page's shape (location object, `listTime`,
/// primary and extra params), as a sale and as a let.
#[test]
fn avito_pages_of_either_generation_read_alike() {
    let html = String::from_utf8(AVITO.to_vec()).expect("utf-8");
    let start = html.find("application/json\">").expect("script") + "application/json\">".len();
    let end = html[start..].find("</script>").expect("end") + start;
    let state: serde_json::Value = serde_json::from_str(&html[start..end]).expect("json");
    let ads = state
        .pointer("/props/pageProps/initialReduxState/ad/search/ads")
        .expect("ads")
        .clone();
    let newer = serde_json::json!({"props": {"pageProps": {"componentProps": {
        "ads": {"ads": ads, "totalListingAds": 47_581}
    }}}});
    let newer_page = format!(
        r#"<html><body><script id="__NEXT_DATA__" type="application/json">{newer}</script></body></html>"#
    );
    let older = normalize_file(SourceKind::Avito, AVITO, observed_at()).expect("2024 page");
    let newer =
        normalize_file(SourceKind::Avito, newer_page.as_bytes(), observed_at()).expect("2026 page");
    assert_eq!(newer.listings, older.listings);
    assert_eq!(paging(&newer).total_results, Some(47_581));

    let detail: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/avito_adview_appartement_avec_jardin.json"
    ))
    .expect("json");
    let mut priced = detail.clone();
    priced["price"] = serde_json::json!({"value": 2_300_000, "currency": "DH"});
    let mut let_ = priced.clone();
    let_["type"] = serde_json::json!({"key": "l", "label": "à louer"});
    let_["price"] = serde_json::json!({"value": 9_000, "currency": "DH"});
    let state = serde_json::json!({"props": {"pageProps": {"componentProps": {
        "ads": {"ads": [detail, priced, let_]}
    }}}});
    let page = format!(r#"<script id="__NEXT_DATA__" type="application/json">{state}</script>"#);
    let page = normalize_file(SourceKind::Avito, page.as_bytes(), observed_at()).expect("page");
    assert_eq!(page.rejects.len(), 1, "the real detail page has no price");
    let [sale, rent] = &page.listings[..] else {
        panic!("{:?}", page.listings)
    };
    assert_eq!((sale.offer, rent.offer), (Offer::Sale, Offer::Rent));
    assert_eq!(sale.market.city_state, "ma/marrakech");
    assert_eq!(sale.address.neighbourhood.as_deref(), Some("Sakar"));
    // The habitable surface, not the total (which counts the garden).
    assert_eq!(sale.details.living_area_sqm, Some(140));
    assert_eq!(sale.details.floor, Some(0), "Rez de chaussée");
    assert_eq!(
        sale.details.equipment,
        ["Chauffage", "Climatisation", "Cuisine équipée", "Terrasse"]
    );
    assert_eq!(sale.details.seller_type, Some(SellerType::Private));
    assert_eq!(
        sale.on_market_date.map(|d| d.to_string()).as_deref(),
        Some("2024-09-26")
    );
}

fn error_of(source: SourceKind, bytes: &[u8]) -> SourceError {
    match normalize_file(source, bytes, observed_at()) {
        Ok(page) => panic!(
            "{source}: expected an error, got {} listings and {} rejects",
            page.listings.len(),
            page.rejects.len()
        ),
        Err(e) => e,
    }
}

#[test]
fn a_mubawab_card_without_its_fields_is_rejected_with_the_reason() {
    let html = String::from_utf8(MUBAWAB.to_vec()).expect("utf-8");
    // The first card's price on request, the second's price tag gone.
    let html = html
        .replacen("19,000 DH", "Price on request", 1)
        .replacen("34,000 DH", "3,400 €", 1)
        .replacen(
            "<span class=\"priceTag hardShadow float-left\">7,500 DH",
            "<span class=\"price\">7,500 DH",
            1,
        );
    let page = normalize_file(SourceKind::Mubawab, html.as_bytes(), observed_at()).expect("page");
    assert_eq!(page.listings.len(), 1);
    let reasons: Vec<String> = page.rejects.iter().map(ToString::to_string).collect();
    assert_eq!(
        reasons,
        [
            "mubawab:7994991 (record 0): no price: the listing shows a price on request",
            "mubawab:8267762 (record 1): no price (span.priceTag)",
            "mubawab:8267682 (record 2): currency: \"EUR\" in MA: markets there count in MAD, \
             and amounts of two currencies are never added together",
        ]
    );
}

#[test]
fn a_page_whose_layout_changed_is_an_error_not_an_empty_market() {
    let html = String::from_utf8(MUBAWAB.to_vec()).expect("utf-8");
    let renamed = html.replace("listingBox", "adCard");
    let err = error_of(SourceKind::Mubawab, renamed.as_bytes());
    assert!(matches!(err, SourceError::NoListings { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("no listing card (div.listingBox)"),
        "{message}"
    );
    assert!(message.contains("When a portal changes"), "{message}");
    // The other portal's page is named as such, not taken for a changed layout.
    let other = error_of(SourceKind::Avito, MUBAWAB);
    assert!(matches!(other, SourceError::WrongShape { .. }), "{other}");
    assert!(
        other.to_string().contains("try --source mubawab"),
        "{other}"
    );
}

#[test]
fn hostile_pages_never_panic() {
    let deep = format!("{}{}", "<div>".repeat(100_000), "<b>".repeat(100_000));
    let deep_json = format!(
        r#"<script id="__NEXT_DATA__" type="application/json">{}1{}</script>"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let binary: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let many_cards =
        "<div class=\"listingBox\"><h2 class=\"listingTit\">x</h2></div>".repeat(20_000);
    for source in [SourceKind::Avito, SourceKind::Mubawab] {
        for page in [
            deep.as_bytes(),
            deep_json.as_bytes(),
            &binary,
            b"",
            many_cards.as_bytes(),
        ] {
            // Either an error with a message or a page of rejects; never a panic.
            match normalize_file(source, page, observed_at()) {
                Ok(page) => assert!(page.listings.is_empty() && !page.rejects.is_empty()),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        let huge = vec![b'x'; realty_sources::portal::MAX_PORTAL_PAGE_BYTES + 1];
        assert!(matches!(
            error_of(source, &huge),
            SourceError::TooLarge { .. }
        ));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// A real page cut, spliced and spiked with markup anywhere still reads without panicking,
    /// and every listing it yields is valid.
    #[test]
    fn a_mangled_real_page_never_panics(
        cut in 0usize..MUBAWAB.len(),
        length in 0usize..4_000,
        junk in "[<>/a-z\"= 0-9,.\u{a0}\u{660}-\u{669}DHm²]{0,200}",
    ) {
        let end = (cut + length).min(MUBAWAB.len());
        let mut page = MUBAWAB[..cut].to_vec();
        page.extend_from_slice(junk.as_bytes());
        page.extend_from_slice(&MUBAWAB[end..]);
        if let Ok(page) = normalize_file(SourceKind::Mubawab, &page, observed_at()) {
            for listing in &page.listings {
                proptest::prop_assert_eq!(listing.validate(), Ok(()));
            }
        }
    }
}
