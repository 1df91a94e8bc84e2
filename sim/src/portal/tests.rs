//! Unit tests of the portals: their searches, ads, pages, ground truth and French text.

use chrono::TimeDelta;

use super::portals::page_of;
use super::*;
use crate::truth::EventKind;

fn portals() -> Portals {
    Portals::new(7, crate::default_start(), 60)
}

#[test]
fn searches_hover_around_their_size_and_repeat() {
    let search = Search {
        portal: Portal::Avito,
        city: 0,
        offer: AdOffer::Sale,
        kind: AdKind::Apartment,
    };
    let at = crate::default_start();
    let (featured, others) = portals().live(search, at);
    let live = featured.len() + others.len();
    assert!((35..=90).contains(&live), "{live} live ads");
    assert_eq!(portals().live(search, at), (featured, others));
    let ids: std::collections::BTreeSet<_> = portals()
        .ads(search, at)
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids.len(), portals().ads(search, at).len(), "ids are unique");
}

#[test]
fn an_ad_page_answers_while_the_ad_is_up_and_404_after() {
    let p = portals();
    let t0 = crate::default_start();
    let t1 = t0 + TimeDelta::days(20);
    for portal in Portal::ALL {
        let search = Search {
            portal,
            city: 1,
            offer: AdOffer::Sale,
            kind: AdKind::House,
        };
        let path = |id: &str| match portal {
            Portal::Avito => format!("/fr/rabat/villas_et_riads/Villa_a_vendre_{id}.htm"),
            Portal::Mubawab => format!("/fr/a/{id}/villa-a-vendre"),
        };
        let answer = |id: &str, at, faults: &pages::PortalFaults| {
            pages::answer(&p, portal, &path(id), None, at, faults)
        };
        let status = |id: &str, at| answer(id, at, &pages::PortalFaults::default()).status;
        let ads = p.ads(search, t0);
        let up = ads.iter().find(|ad| ad.live_at(t0) && !ad.live_at(t1));
        let up = up.expect("an ad up at t0 and down by t1");
        assert_eq!(p.ad(portal, &up.id, t0).as_ref(), Some(up));
        assert_eq!(status(&up.id, t0), 200, "{portal:?} {}", up.id);
        assert_eq!(status(&up.id, t1), 404, "{portal:?} {} taken down", up.id);
        // Or, as the real portals do, a redirect to its search.
        let redirecting = pages::PortalFaults {
            taken_down_redirect: true,
            ..pages::PortalFaults::default()
        };
        let moved = answer(&up.id, t1, &redirecting);
        let search_path = match portal {
            Portal::Avito => "/avito/fr/rabat/maisons-%C3%A0_vendre",
            Portal::Mubawab => "/mubawab/fr/st/rabat/maisons-a-vendre",
        };
        assert_eq!(
            (moved.status, moved.headers),
            (301, vec![("location", search_path.to_owned())])
        );
        assert_eq!(answer(&up.id, t0, &redirecting).status, 200);
        // A number never given, and one of the other portal's range.
        let unknown = (portal.first_id() + 99_999).to_string();
        assert_eq!(status(&unknown, t1), 404);
        assert_eq!(p.ad(portal, "12", t1), None);
    }
}

#[test]
fn prices_are_in_plausible_dirhams() {
    for search in Portals::searches() {
        for ad in portals().ads(search, crate::default_start()) {
            let Some(price) = ad.first_price else {
                continue;
            };
            let range = match ad.offer {
                AdOffer::Sale => 100_000..=200_000_000,
                AdOffer::Rent => 500..=500_000,
            };
            assert!(range.contains(&price), "{ad:?}");
        }
    }
}

#[test]
fn ground_truth_follows_the_live_ads() {
    let p = portals();
    let t0 = crate::default_start();
    let t1 = t0 + TimeDelta::days(3);
    let search = Search {
        portal: Portal::Mubawab,
        city: 1,
        offer: AdOffer::Rent,
        kind: AdKind::House,
    };
    let live = |at| {
        let (f, o) = p.live(search, at);
        f.into_iter()
            .chain(o)
            .map(|a| a.id)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let mut expected = live(t0);
    for e in p.ground_truth(t0, t1) {
        if e.portal != search.portal || e.market != "ma/rabat" {
            continue;
        }
        let ad = p.ads(search, t1).into_iter().find(|a| a.id == e.id);
        if ad.is_none() {
            continue;
        }
        match e.kind {
            EventKind::New { .. } => assert!(expected.insert(e.id)),
            EventKind::Delisted { .. } => assert!(expected.remove(&e.id)),
            _ => {}
        }
    }
    assert_eq!(expected, live(t1));
}

#[test]
fn french_dates_and_numbers() {
    let now = crate::default_start();
    assert_eq!(
        relative_date(now - TimeDelta::minutes(7), now),
        "il y a 7 minutes"
    );
    assert_eq!(
        relative_date(now - TimeDelta::hours(1), now),
        "il y a 1 heure"
    );
    assert_eq!(
        relative_date(now - TimeDelta::days(3), now),
        "il y a 3 jours"
    );
    assert_eq!(
        relative_date(now - TimeDelta::days(70), now),
        "il y a 2 mois"
    );
    assert_eq!(french_number(1_250_000), "1\u{a0}250\u{a0}000");
    assert_eq!(french_number(950), "950");
}

#[test]
fn featured_ads_top_every_page() {
    let p = portals();
    let search = Search {
        portal: Portal::Avito,
        city: 0,
        offer: AdOffer::Sale,
        kind: AdKind::Apartment,
    };
    let (featured, others) = p.live(search, crate::default_start());
    let (first, more) = page_of(&featured, &others, 1, 10);
    let (second, _) = page_of(&featured, &others, 2, 10);
    let shown = featured.len().min(2);
    assert_eq!(first[..shown], second[..shown]);
    assert!(more);
}

#[test]
fn featured_ads_past_a_quarter_page_take_their_place_among_the_others() {
    let p = portals();
    let search = Search {
        portal: Portal::Avito,
        city: 0,
        offer: AdOffer::Sale,
        kind: AdKind::Apartment,
    };
    let (featured, others) = p.live(search, crate::default_start());
    // Every live ad a featured one: 2 atop each page of 8, the rest in date order once.
    let all: Vec<PortalAd> = featured.iter().chain(&others).cloned().collect();
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let (ads, more) = page_of(&all, &[], page, 8);
        assert_eq!(ads[..2], all[..2]);
        seen.extend(ads[2..].iter().map(|a| a.id.clone()));
        if !more {
            break;
        }
        page += 1;
    }
    let mut rest = all[2..].to_vec();
    rest.sort_by(|a, b| b.posted_at.cmp(&a.posted_at).then(a.id.cmp(&b.id)));
    let expected: Vec<String> = rest.into_iter().map(|a| a.id).collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_city_redirected_sends_each_search_page_to_the_other_city_s() {
    let p = portals();
    let faults = pages::PortalFaults {
        city_redirect: Some((0, 1)),
        ..pages::PortalFaults::default()
    };
    let at = crate::default_start();
    let answer = |portal, path: &str, query| pages::answer(&p, portal, path, query, at, &faults);
    let moved = answer(
        Portal::Mubawab,
        "/fr/st/casablanca/appartements-a-louer:p:2",
        None,
    );
    assert_eq!(
        (moved.status, moved.headers),
        (
            301,
            vec![(
                "location",
                "/mubawab/fr/st/rabat/appartements-a-louer%3Ap%3A2".to_owned()
            )]
        )
    );
    let moved = answer(
        Portal::Avito,
        "/fr/casablanca/maisons-à_vendre",
        Some("o=2"),
    );
    assert_eq!(
        moved.headers,
        vec![(
            "location",
            "/avito/fr/rabat/maisons-%C3%A0_vendre?o=2".to_owned()
        )]
    );
    // The other cities' searches read as before.
    assert_eq!(
        answer(Portal::Avito, "/fr/rabat/maisons-à_vendre", None).status,
        200
    );
}
