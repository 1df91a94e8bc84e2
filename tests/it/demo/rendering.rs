//! (c) The demo's page in a real browser.

use std::path::{Path, PathBuf};

use libtest_mimic::Failed;

use crate::dashboard::{self, CHROMIUM};

/// Opens the report from its file in headless Chromium (no server, as a reader opens it) and
/// waits until every chart is drawn: a canvas with a size and values to show. Saves a
/// screenshot under target/tmp/demo/.
pub(super) async fn check_rendering(index: &Path, charts: usize) -> Result<(), Failed> {
    if !Path::new(CHROMIUM).exists() {
        println!(
            "skipped the browser check: {CHROMIUM} is not installed (Debian package `chromium`)"
        );
        return Ok(());
    }
    let dir = index.parent().ok_or("the report has no directory")?;
    let (mut browser, driver) = dashboard::launch(&dir.join("chromium-profile")).await?;
    let checked = async {
        let page = dashboard::open(&browser, &format!("file://{}", index.display())).await?;
        let drawn = format!(
            "document.body.dataset.ready === 'drawn' && document.querySelectorAll('.chart').length === {charts} && [...document.querySelectorAll('.chart')].every(c => {{ const k = c.querySelector('canvas'); return k && k.width > 0 && k.height > 0 && Number(c.dataset.points) > 0; }})"
        );
        dashboard::wait_for(&page, "every chart of the report drawn", &drawn).await?;
        dashboard::no_page_errors(&page).await?;
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo");
        std::fs::create_dir_all(&shots)?;
        let shot = shots.join("report.png");
        dashboard::save(&page, &shot).await?;
        println!("demo report screenshot: {}", shot.display());
        Ok::<(), Failed>(())
    }
    .await;
    dashboard::close(&mut browser, driver).await;
    checked
}
