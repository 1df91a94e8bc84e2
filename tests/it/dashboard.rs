//! The dashboard in a real browser: a local stack the pipeline has filled over a simulated
//! week, `realty serve --port 0` over it, headless Chromium (driven over the DevTools
//! protocol by chromiumoxide) opening the page, refused a wrong token, given the right one
//! through the page's form, drawing the market list, then a market's charts once it is
//! clicked (its averages the pipeline's stored ones), its listings of interest and alerts,
//! and at a phone's width; screenshots of the views are saved under target/tmp/dashboard/
//! (CARGO_TARGET_TMPDIR).

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
use realty_metrics::aggregate::MarketFigures;
use realty_metrics::aggregate::history::trends;
use realty_tests::{TestAws, ensure};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::demo::pump_until_quiet;
use crate::monitoring::Alerts;
use crate::operations::LocalCli;
use realty_alerts::config::AlertsConfig;
use realty_aws::functions::alerts::AlertsFunction;
use realty_infra::runner::Mapping;

crate::async_tests!(the_dashboard_draws_the_markets_and_a_markets_charts_in_chromium);

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
const MARKETS: [&str; 2] = ["nashville-tn", "syracuse-ny"];
/// Daily polls, so that the charts have a week of days and the 7-day average moves.
const DAYS: i64 = 8;
/// The charts a market view draws (app.js / charts.js).
const CHARTS: usize = 6;
/// Many times what the page takes here to draw; past it the page is stuck.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);
/// Where the page keeps the token (app.js).
const TOKEN_KEY: &str = "realty-stream-token";
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
    // The alerts function over the market table's stream from its start: the alert feed the
    // page reads.
    let mut alerts = Mapping::new(
        &s.sdk,
        &aws.template(),
        &s.stack,
        "AlertsFunction",
        Alerts(AlertsFunction::new(
            &aws.function_sdk("AlertsFunction").await,
            &s.resources,
            &AlertsConfig::from_lookup(|_| None)?,
        )),
    )
    .await?;
    pump_until_quiet(&mut alerts).await?;

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
    let checked = match in_chromium(&url, &token, &cli, &shots).await {
        Ok(()) => report_page_holds_the_same_views(&cli).await,
        failed => failed,
    };
    server.start_kill()?;
    let _ = server.wait().await;
    let _ = std::fs::remove_dir_all(&cli.state_dir);
    sim.shutdown().await?;
    checked
}

/// `realty report --format html` embeds what the API answers for the market: its report,
/// its lists of interest and its alerts (tests/it/demo/ opens such a page in Chromium).
async fn report_page_holds_the_same_views(cli: &LocalCli) -> Result<(), Failed> {
    let output = cli
        .command(&["report", "--market", MARKETS[0], "--format", "html"])
        .output()
        .await?;
    let page = String::from_utf8_lossy(&output.stdout);
    ensure(
        output.status.success(),
        format!(
            "realty report --format html failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    )?;
    let data = page
        .split(r#"<script type="application/json" id="report-data">"#)
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .ok_or("the report page embeds no data")?;
    let data: serde_json::Value = serde_json::from_str(data)?;
    let market = &data["markets"][0];
    let count = |v: &serde_json::Value| v.as_array().map_or(0, Vec::len);
    ensure(
        market["market"] == MARKETS[0]
            && count(&market["daily"]) >= 2
            && count(&market["price_per_sqft_distribution"]) > 0
            && count(&market["listings"]["price_cut"]) > 0
            && count(&market["alerts"]) > 0
            && page.contains("Charts.draw("),
        format!(
            "the report page's market: {} days, {} buckets, {} cuts, {} alerts",
            count(&market["daily"]),
            count(&market["price_per_sqft_distribution"]),
            count(&market["listings"]["price_cut"]),
            count(&market["alerts"])
        ),
    )
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
    let (mut browser, driver) = launch(&cli.state_dir.join("chromium-profile")).await?;
    let checked = drive(&browser, url, token, shots).await;
    close(&mut browser, driver).await;
    checked
}

/// Headless Chromium with its profile in `profile`, and the task that moves its connection.
pub(crate) async fn launch(
    profile: &Path,
) -> Result<(Browser, tokio::task::JoinHandle<()>), Failed> {
    let config = BrowserConfig::builder()
        .chrome_executable(CHROMIUM)
        .no_sandbox()
        .arg("--disable-gpu")
        .user_data_dir(profile)
        .window_size(1200, 900)
        .viewport(None)
        .build()?;
    let (browser, mut events) = Browser::launch(config).await?;
    // The connection only moves while its events are read; an event this chromiumoxide
    // does not know (a newer Chromium) is an error to skip, not a reason to stop.
    let driver = tokio::spawn(async move { while events.next().await.is_some() {} });
    Ok((browser, driver))
}

pub(crate) async fn close(browser: &mut Browser, driver: tokio::task::JoinHandle<()>) {
    let _ = browser.close().await;
    let _ = browser.wait().await;
    driver.abort();
}

/// A new tab at `url` that notes every uncaught error of the page's scripts (see
/// [`no_page_errors`]).
pub(crate) async fn open(browser: &Browser, url: &str) -> Result<Page, Failed> {
    let page = browser.new_page("about:blank").await?;
    page.evaluate_on_new_document(
        "window.pageErrors = []; window.addEventListener('error', e => window.pageErrors.push(String(e.message))); window.addEventListener('unhandledrejection', e => window.pageErrors.push(String(e.reason)));",
    )
    .await?;
    page.goto(url).await?;
    Ok(page)
}

pub(crate) async fn no_page_errors(page: &Page) -> Result<(), Failed> {
    let errors: Vec<String> = page.evaluate("window.pageErrors").await?.into_value()?;
    ensure(
        errors.is_empty(),
        format!("the page's scripts failed: {errors:?}"),
    )
}

async fn drive(browser: &Browser, url: &str, token: &str, shots: &Path) -> Result<(), Failed> {
    let page = open(browser, url).await?;
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
    // The figures' own age, not only when the page asked.
    let as_of: String = page
        .evaluate("document.getElementById('market-as-of').textContent")
        .await?
        .into_value()?;
    ensure(
        as_of.starts_with("Figures as of "),
        format!("the market's figures are dated {as_of:?}"),
    )?;
    lists_are_there(&page).await?;
    let market = shots.join("market.png");
    save(&page, &market).await?;
    averages_are_the_pipelines(&page).await?;
    no_figures_leave_nothing_behind(&page, &drawn).await?;

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
    the_token_can_be_forgotten(&page).await?;
    no_page_errors(&page).await?;
    println!(
        "dashboard screenshots: {} (and markets.png, market-phone.png beside it)",
        market.display()
    );
    Ok(())
}

/// "Forget the token" is on screen while the browser keeps a token; it removes the token
/// and what the page read with it, and the page asks for a token again, after a reload too.
async fn the_token_can_be_forgotten(page: &Page) -> Result<(), Failed> {
    let shown: bool = page
        .evaluate(
            "(() => { const b = document.getElementById('forget-token'); const r = b.getBoundingClientRect(); return !b.hidden && r.width > 0 && r.height > 0 && r.bottom > 0 && r.right <= window.innerWidth; })()",
        )
        .await?
        .into_value()?;
    ensure(shown, "no control on screen forgets the token")?;
    page.find_element("#forget-token").await?.click().await?;
    wait_for(
        page,
        "the token form, the token gone from the browser and nothing read with it left",
        &format!(
            "!document.getElementById('token-form').hidden \
             && localStorage.getItem('{TOKEN_KEY}') === null \
             && document.getElementById('token-message').textContent.includes('no longer keeps') \
             && document.getElementById('forget-token').hidden \
             && ['markets-view', 'market-view', 'health-view'].every(id => document.getElementById(id).hidden) \
             && document.querySelectorAll('#markets *, #market-figures *, #charts *, #interest *, #alerts *, #sources tbody *, #freshness tbody *').length === 0 \
             && document.getElementById('market-name').textContent === ''"
        ),
    )
    .await?;
    page.reload().await?;
    wait_for(
        page,
        "the token form after a reload",
        "!document.getElementById('token-form').hidden \
         && document.getElementById('token-message').textContent.includes('Paste the access token') \
         && document.getElementById('forget-token').hidden",
    )
    .await
}

/// A market without figures after one with them: nothing of the first stays under the
/// second's name; and the status line's "No figures" goes once a market with figures is
/// back (`drawn`: the first market's charts drawn).
async fn no_figures_leave_nothing_behind(page: &Page, drawn: &str) -> Result<(), Failed> {
    page.evaluate("location.hash = 'market/nowhere-tx'").await?;
    wait_for(
        page,
        "a market without figures, shown empty",
        "document.getElementById('market-view').dataset.ready === 'nowhere-tx:0' \
         && document.getElementById('market-name').textContent === 'Nowhere, TX' \
         && document.getElementById('status').textContent.startsWith('No figures for Nowhere, TX') \
         && document.querySelectorAll('#market-figures *, #charts *, #interest *, #alerts *').length === 0 \
         && document.getElementById('market-as-of').textContent === '' \
         && document.getElementById('ma-note').textContent === ''",
    )
    .await?;
    page.evaluate(format!("location.hash = 'market/{}'", MARKETS[0]))
        .await?;
    wait_for(
        page,
        "the first market again, with its lists and an empty status line",
        &format!(
            "{drawn} && document.getElementById('interest').dataset.ready === '{0}' \
             && document.getElementById('alerts').dataset.ready === '{0}' \
             && document.getElementById('status').textContent === ''",
            MARKETS[0]
        ),
    )
    .await
}

/// The price chart draws the averages the pipeline stored with each day: for every day,
/// its 7- and 30-day points are what `trends` gives over the market's daily figures up to
/// that day, and the last ones are the report's latest `trends`.
async fn averages_are_the_pipelines(page: &Page) -> Result<(), Failed> {
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * b.abs().max(1.0),
        (None, None) => true,
        _ => false,
    };
    type Drawn = (
        Vec<(String, MarketFigures)>,
        Vec<(Option<f64>, Option<f64>)>,
        serde_json::Value,
    );
    let (daily, drawn, latest): Drawn = serde_json::from_value(
        page.evaluate_function(format!(
            "async () => {{
               const r = await api('/markets/{}');
               const price = Charts.specs(r).find(c => c.id === 'price');
               const line = (label) => price.series.find(s => s.label === label).values;
               const week = line('7-day average');
               const month = line('30-day average');
               return [r.daily.map(s => [s.period, s.figures]), week.map((w, i) => [w, month[i]]), r.trends];
             }}",
            MARKETS[0]
        ))
        .await?
        .into_value::<serde_json::Value>()?,
    )?;
    let daily: Vec<(chrono::NaiveDate, MarketFigures)> = daily
        .into_iter()
        .map(|(day, f)| Ok((day.parse()?, f)))
        .collect::<Result<_, chrono::ParseError>>()?;
    ensure(
        daily.len() >= 2 && drawn.len() == daily.len(),
        format!("{} days drawn of {}", drawn.len(), daily.len()),
    )?;
    for (k, (day, _)) in daily.iter().enumerate() {
        let closes = daily[..=k]
            .iter()
            .map(|(d, f)| (*d, realty_metrics::aggregate::DayClose::from(f)))
            .collect();
        let stored = trends(&closes, *day);
        ensure(
            close(drawn[k].0, stored.median_price_ma_7d)
                && close(drawn[k].1, stored.median_price_ma_30d),
            format!(
                "{day}: the chart draws {:?}, the pipeline's averages are {stored:?}",
                drawn[k]
            ),
        )?;
    }
    let last = drawn.last().copied().unwrap_or_default();
    ensure(
        last.0.is_some()
            && close(last.0, latest["median_price_ma_7d"].as_f64())
            && close(last.1, latest["median_price_ma_30d"].as_f64()),
        format!("the chart's last averages {last:?}, the report's {latest:?}"),
    )
}

/// The listings of interest and the alert feed: read, each list with rows or a sentence
/// saying it is empty, every row in words, every address link opening a new tab.
async fn lists_are_there(page: &Page) -> Result<(), Failed> {
    let market = MARKETS[0];
    wait_for(
        page,
        "the listings of interest and the alerts",
        &format!(
            "document.getElementById('interest').dataset.ready === '{market}' && document.getElementById('alerts').dataset.ready === '{market}'"
        ),
    )
    .await?;
    let lists: Vec<(String, usize, Vec<String>)> = page
        .evaluate(
            "[...document.querySelectorAll('#interest .list'), document.getElementById('alerts')].map(l => [l.id, l.querySelectorAll('.row').length, [...l.querySelectorAll('.row .reason, .empty')].map(r => r.textContent)])",
        )
        .await?
        .into_value()?;
    ensure(
        lists.len() == 4
            && lists
                .iter()
                .all(|(_, _, words)| !words.is_empty() && words.iter().all(|w| !w.is_empty())),
        format!("the lists read {lists:?}"),
    )?;
    let cuts = &lists[0];
    ensure(
        cuts.0 == "interest-price_cut"
            && cuts.1 > 0
            && cuts
                .2
                .iter()
                .all(|w| w.starts_with("cut ") || w.starts_with("price cut")),
        format!("the latest price cuts read {cuts:?}"),
    )?;
    let alerts = &lists[3];
    ensure(
        alerts.1 > 0,
        format!("the alert feed shows no alert: {alerts:?}"),
    )?;
    // Only price drops, when asked; every row then says a price was cut.
    page.evaluate(
        "(() => { const s = document.getElementById('alert-type'); s.value = 'price_drop'; s.dispatchEvent(new Event('change')); document.getElementById('alerts').dataset.ready = ''; })()",
    )
    .await?;
    wait_for(
        page,
        "the price drops only",
        &format!("document.getElementById('alerts').dataset.ready === '{market}'"),
    )
    .await?;
    let drops: Vec<(String, String)> = page
        .evaluate(
            "[...document.querySelectorAll('#alerts .row')].map(r => [r.dataset.type, r.querySelector('.reason').textContent])",
        )
        .await?
        .into_value()?;
    ensure(
        !drops.is_empty()
            && drops
                .iter()
                .all(|(t, w)| t == "price_drop" && w.starts_with("Price cut ")),
        format!("the price drops read {drops:?}"),
    )?;
    let links: Vec<(String, String)> = page
        .evaluate(
            "[...document.querySelectorAll('#market-view a.address')].map(a => [a.target, a.rel])",
        )
        .await?
        .into_value()?;
    ensure(
        links
            .iter()
            .all(|(t, r)| t == "_blank" && r == "noopener noreferrer"),
        format!("address links {links:?}"),
    )
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
pub(crate) async fn wait_for(page: &Page, what: &str, condition: &str) -> Result<(), Failed> {
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
            // What the page shows instead: its status line, script errors, what is ready,
            // each chart's canvas or its sentence.
            let seen: serde_json::Value = page
                .evaluate(
                    "({ status: document.getElementById('status')?.textContent ?? '', errors: window.pageErrors ?? [], ready: [...document.querySelectorAll('[data-ready]')].map(e => (e.id || e.tagName) + '=' + e.dataset.ready), charts: [...document.querySelectorAll('.chart')].map(c => c.id + ': ' + (c.querySelector('canvas') ? 'canvas, ' + c.dataset.points + ' values' : c.textContent.slice(-80))) })",
                )
                .await?
                .into_value()?;
            return Err(format!("the page never showed {what}: {seen}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn save(page: &Page, path: &Path) -> Result<(), Failed> {
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), path)
        .await?;
    Ok(())
}
