//! The dashboard in a real browser: a local stack the pipeline has filled over a simulated
//! week, `realty serve --port 0` over it, headless Chromium (driven over the DevTools
//! protocol by chromiumoxide) opening the page, refused a wrong token, given the right one
//! through the page's form, drawing the market list, then a market's charts once it is
//! clicked, its averages the pipeline's, and at a phone's width; screenshots of the views are
//! saved under target/tmp/dashboard/ (CARGO_TARGET_TMPDIR).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::api::filled;
use chromiumoxide::Page;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use futures::StreamExt as _;
use libtest_mimic::Failed;
use realty_core::metrics::aggregate::MarketFigures;
use realty_core::metrics::history::trends;
use realty_tests::{TestAws, ensure};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::operations::LocalCli;

crate::async_tests!(the_dashboard_draws_the_markets_and_a_markets_charts_in_chromium);

const CHROMIUM: &str = "/usr/bin/chromium";
const MARKETS: [&str; 2] = ["nashville-tn", "syracuse-ny"];
/// Daily polls, so that the charts have a week of days and the 7-day average moves.
const DAYS: i64 = 8;
/// The charts a market view draws (app.js / charts.js).
const CHARTS: usize = 5;
/// Many times what the page takes here to draw; past it the page is stuck.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);
/// Bound on `realty serve` printing its address (it reads the token from the stack first).
const SERVE_DEADLINE: Duration = Duration::from_secs(120);

async fn the_dashboard_draws_the_markets_and_a_markets_charts_in_chromium(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    if !Path::new(CHROMIUM).exists() {
        println!(
            "skipped the dashboard's browser test: {CHROMIUM} is not installed (Debian package `chromium`)"
        );
        return Ok(());
    }
    let (s, sim) = filled(&aws, 161, DAYS).await?;

    let cli = s.local_cli(&aws).await?;
    let mut serve = cli.command(&["serve", "--port", "0"]);
    serve
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut server = serve.spawn()?;
    let (url, token) = tokio::time::timeout(SERVE_DEADLINE, address_and_token(&mut server))
        .await
        .map_err(|_| "realty serve printed no address in time")??;

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots)?;
    let checked = in_chromium(&url, &token, &cli, &shots).await;
    server.start_kill()?;
    let _ = server.wait().await;
    let _ = std::fs::remove_dir_all(&cli.state_dir);
    sim.shutdown().await?;
    checked
}

/// The URL and the token `realty serve` prints: `market API of ... at http://ADDR/`, then
/// `  curl -H "Authorization: Bearer TOKEN" ...`.
pub(crate) async fn address_and_token(
    server: &mut tokio::process::Child,
) -> Result<(String, String), Failed> {
    let stdout = server.stdout.take().ok_or("realty serve has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    while let Some(line) = lines.next_line().await? {
        if let Some((_, at)) = line.split_once(" at http://") {
            url = Some(format!("http://{}", at.trim()));
        } else if let Some((_, rest)) = line.split_once("Bearer ") {
            let token = rest.split('"').next().unwrap_or_default().to_owned();
            let url = url.ok_or("realty serve printed the token before its address")?;
            // Keep reading its output so that the server never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((url, token));
        }
    }
    Err("realty serve stopped before printing its address".into())
}

async fn in_chromium(url: &str, token: &str, cli: &LocalCli, shots: &Path) -> Result<(), Failed> {
    let config = BrowserConfig::builder()
        .chrome_executable(CHROMIUM)
        .no_sandbox()
        .arg("--disable-gpu")
        .user_data_dir(cli.state_dir.join("chromium-profile"))
        .window_size(1200, 900)
        .viewport(None)
        .build()?;
    let (mut browser, mut events) = Browser::launch(config).await?;
    // The connection only moves while its events are read; an event this chromiumoxide
    // does not know (a newer Chromium) is an error to skip, not a reason to stop.
    let driver = tokio::spawn(async move { while events.next().await.is_some() {} });
    let checked = drive(&browser, url, token, shots).await;
    let _ = browser.close().await;
    let _ = browser.wait().await;
    driver.abort();
    checked
}

async fn drive(browser: &Browser, url: &str, token: &str, shots: &Path) -> Result<(), Failed> {
    let page = browser.new_page("about:blank").await?;
    // Every uncaught error of the page's scripts, to fail on at the end.
    page.evaluate_on_new_document(
        "window.pageErrors = []; window.addEventListener('error', e => window.pageErrors.push(String(e.message))); window.addEventListener('unhandledrejection', e => window.pageErrors.push(String(e.reason)));",
    )
    .await?;
    page.goto(url).await?;
    // No token yet: the page asks for one.
    wait_for(
        &page,
        "the token form",
        "!document.getElementById('token-form').hidden",
    )
    .await?;
    give_token(&page, "not-the-token").await?;
    wait_for(
        &page,
        "the form again, saying the token was refused",
        "!document.getElementById('token-form').hidden && document.getElementById('token-message').textContent.includes('not accepted')",
    )
    .await?;
    give_token(&page, token).await?;
    let listed = format!(
        "document.getElementById('markets-view').dataset.ready === '{}' && !document.getElementById('markets-view').hidden",
        MARKETS.len()
    );
    wait_for(&page, "the market list", &listed).await?;
    wait_for(
        &page,
        "the sources' health",
        "document.querySelectorAll('#sources tbody tr').length > 0",
    )
    .await?;
    let names: Vec<String> = page
        .evaluate("[...document.querySelectorAll('#markets button')].map(b => b.dataset.market)")
        .await?
        .into_value()?;
    ensure(names == MARKETS, format!("the page lists {names:?}"))?;
    save(&page, &shots.join("markets.png")).await?;

    page.find_element(&format!("#markets button[data-market='{}']", MARKETS[0]))
        .await?
        .click()
        .await?;
    let drawn = format!(
        "document.getElementById('market-view').dataset.ready === '{}:{CHARTS}' && [...document.querySelectorAll('#charts .chart')].filter(c => {{ const k = c.querySelector('canvas'); return k && k.width > 0 && k.height > 0; }}).length === {CHARTS}",
        MARKETS[0]
    );
    wait_for(&page, "the market's charts", &drawn).await?;
    let market = shots.join("market.png");
    save(&page, &market).await?;
    averages_match_the_pipelines(&page).await?;

    // A phone: the charts shrink to the screen, nothing runs off its side.
    page.execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true))
        .await?;
    wait_for(
        &page,
        "the charts at a phone's width",
        "[...document.querySelectorAll('#charts canvas')].every(k => k.getBoundingClientRect().right <= window.innerWidth) && document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await?;
    save(&page, &shots.join("market-phone.png")).await?;
    let errors: Vec<String> = page.evaluate("window.pageErrors").await?.into_value()?;
    ensure(
        errors.is_empty(),
        format!("the page's scripts failed: {errors:?}"),
    )?;
    println!(
        "dashboard screenshots: {} (and markets.png, market-phone.png beside it)",
        market.display()
    );
    Ok(())
}

/// The page draws the 7- and 30-day averages itself (the API stores only their latest
/// values): its latest ones are the market's stored ones, and on a made-up series with gaps
/// and moving prices its every day's averages are what the pipeline's `trends` says.
async fn averages_match_the_pipelines(page: &Page) -> Result<(), Failed> {
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * b.abs().max(1.0),
        (None, None) => true,
        _ => false,
    };
    let latest: Vec<Option<f64>> = page
        .evaluate_function(format!(
            "async () => {{
               const r = await api('/markets/{}');
               const days = r.daily.map(s => Charts.daySeconds(s.period));
               const prices = r.daily.map(s => s.figures.median_price ?? null);
               const last = (w) => Charts.movingAverage(days, prices, w).at(-1) ?? null;
               return [last(7), r.trends.median_price_ma_7d, last(30), r.trends.median_price_ma_30d];
             }}",
            MARKETS[0]
        ))
        .await?
        .into_value()?;
    ensure(
        latest.len() == 4
            && latest[0].is_some()
            && close(latest[0], latest[1])
            && close(latest[2], latest[3]),
        format!("the page's latest 7/30-day averages and the stored ones: {latest:?}"),
    )?;

    let first = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).ok_or("no such day")?;
    let daily: Vec<(chrono::NaiveDate, MarketFigures)> = (0..45i64)
        .filter(|d| d % 4 != 3)
        .map(|d| {
            let price = 300_000.0 + 1_000.0 * ((d * 37) % 11) as f64 + 500.0 * d as f64;
            let figures = MarketFigures {
                median_price: Some(price),
                ..MarketFigures::default()
            };
            (first + chrono::TimeDelta::days(d), figures)
        })
        .collect();
    let periods: Vec<String> = daily.iter().map(|(d, _)| d.to_string()).collect();
    let prices: Vec<Option<f64>> = daily.iter().map(|(_, f)| f.median_price).collect();
    let drawn: Vec<(Option<f64>, Option<f64>)> = page
        .evaluate_function(format!(
            "() => {{
               const days = {}.map(p => Charts.daySeconds(p));
               const prices = {};
               const week = Charts.movingAverage(days, prices, 7);
               const month = Charts.movingAverage(days, prices, 30);
               return week.map((w, i) => [w, month[i]]);
             }}",
            serde_json::to_string(&periods)?,
            serde_json::to_string(&prices)?
        ))
        .await?
        .into_value()?;
    ensure(
        drawn.len() == daily.len(),
        format!("{} days drawn", drawn.len()),
    )?;
    for (k, (day, _)) in daily.iter().enumerate() {
        let closes = daily[..=k]
            .iter()
            .map(|(d, f)| (*d, realty_core::metrics::aggregate::DayClose::from(f)))
            .collect();
        let stored = trends(&closes, *day);
        ensure(
            close(drawn[k].0, stored.median_price_ma_7d)
                && close(drawn[k].1, stored.median_price_ma_30d),
            format!(
                "{day}: the page draws {:?}, the pipeline stores {stored:?}",
                drawn[k]
            ),
        )?;
    }
    Ok(())
}

async fn give_token(page: &Page, token: &str) -> Result<(), Failed> {
    page.find_element("#token")
        .await?
        .click()
        .await?
        .type_str(token)
        .await?;
    page.find_element("#token-form button")
        .await?
        .click()
        .await?;
    Ok(())
}

/// Waits until `condition` (a JavaScript expression) holds in the page.
async fn wait_for(page: &Page, what: &str, condition: &str) -> Result<(), Failed> {
    let deadline = tokio::time::Instant::now() + PAGE_DEADLINE;
    loop {
        let holds: bool = page
            .evaluate(format!("Boolean({condition})"))
            .await?
            .into_value()?;
        if holds {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let status: String = page
                .evaluate("document.getElementById('status').textContent")
                .await?
                .into_value()?;
            return Err(
                format!("the page never showed {what} (its status line: {status:?})").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn save(page: &Page, path: &Path) -> Result<(), Failed> {
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), path)
        .await?;
    Ok(())
}
