//! `realty normalize`: listings on stdout, rejects and a summary on stderr, exit 0 for a
//! response of that API, a clear non-zero exit otherwise, whatever the file holds.

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
        .join("../shared/core/tests/fixtures")
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
