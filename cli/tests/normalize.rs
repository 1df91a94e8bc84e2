//! `realty normalize`: listings on stdout, rejects and a summary on stderr, exit 0 for a
//! response of that API, a clear non-zero exit otherwise, whatever the file holds.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use std::path::Path;
use std::process::Command;

fn normalize(source: &str, file: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_realty"))
        .args(["normalize", "--source", source])
        .arg(file)
        .output()
        .expect("realty runs")
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/sources/tests/fixtures")
        .join(name)
}

#[test]
fn prints_listings_rejects_and_a_summary() {
    let out = normalize(
        "zillow",
        &fixture("zillow_propertyExtendedSearch_props_syracuse_ny.json"),
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().count(), 40);
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(v["id"].as_str().is_some_and(|id| id.starts_with("zillow:")));
    }
    assert!(stderr.contains("placeholder"), "{stderr}");
    assert!(
        stderr.trim_end().ends_with("normalized 40, rejected 1"),
        "{stderr}"
    );
}

#[test]
fn refuses_another_apis_response_and_garbage_without_panicking() {
    let dir = std::env::temp_dir().join(format!("realty-normalize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let garbage = dir.join("garbage.bin");
    std::fs::write(&garbage, [0xff, 0x00, 0x7b, 0x22, 0xc3]).expect("write");
    let cases = [
        (
            "zillow",
            fixture("realtor_realty-in-us_properties_v3_list.json"),
            "try --source realtor",
        ),
        ("realtor", garbage.clone(), "not JSON"),
        (
            "reso",
            fixture("zillow_propertyExtendedSearch_37201_nashville_tn.json"),
            "RESO",
        ),
        ("file", dir.join("missing.csv"), "cannot read"),
    ];
    for (source, file, says) in cases {
        let out = normalize(source, &file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{source} {file:?}: {stderr}");
        assert!(stderr.contains(says), "{source} {file:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn saved_portal_pages_become_listings_and_an_empty_page_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_realty"))
        .args([
            "normalize",
            "--source",
            "avito",
            "--observed-at",
            "2024-09-24T23:59:29Z",
        ])
        .arg(fixture("avito_search_appartements_a_vendre.html"))
        .output()
        .expect("realty runs");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().count(), 29);
    let first: serde_json::Value =
        serde_json::from_str(stdout.lines().next().unwrap_or_default()).expect("a JSON line");
    assert_eq!(first["market"]["city_state"], "ma/casablanca");
    assert_eq!(first["currency"], "MAD");
    assert_eq!(first["on_market_date"], "2024-09-24");
    assert!(
        stderr.trim_end().ends_with("normalized 29, rejected 6"),
        "{stderr}"
    );

    let out = normalize(
        "mubawab",
        &fixture("mubawab_search_real_estate_for_rent_en.html"),
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);

    // A page of the portal without listing cards (its layout changed, or an empty search).
    let dir = std::env::temp_dir().join(format!("realty-portal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let empty = dir.join("mubawab-empty.html");
    std::fs::write(
        &empty,
        "<html><body><h1 id=\"titleText\">Appartements à vendre</h1></body></html>",
    )
    .expect("write");
    let out = normalize("mubawab", &empty);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no listings in this search page of Mubawab.ma"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
