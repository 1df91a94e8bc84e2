//! `realty report --market KEY`: a market's live figures, trends and latest snapshots.

use anyhow::{Result, bail};
use chrono::Utc;
use realty_api::views::{MarketReport, market_report, scope_of};
use realty_aws::adapters::dynamodb::DynamoMarketStore;
use realty_aws::adapters::retry::RetryPolicy;
use realty_metrics::aggregate::rents::YieldBasis;
use realty_model::format::amount;
use realty_model::listing::AreaUnit;

use crate::target;

/// How `realty report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    /// The daily history, one row a day.
    Csv,
    /// The demo's report page, for this market.
    Html,
}

pub async fn run(market: &str, format: Format, stack: Option<&str>) -> Result<()> {
    let target = target::resolve(stack).await?;
    let store = DynamoMarketStore {
        client: aws_sdk_dynamodb::Client::new(&target.sdk),
        table: target.resources.market_table.clone(),
        retry: RetryPolicy::default(),
    };
    let Some(report) = market_report(&store, market).await? else {
        bail!(
            "no market {} in {} (markets appear once the metrics function has seen their listings)",
            scope_of(market),
            target.description
        );
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print_text(&report),
        Format::Csv => print_csv(&report),
        Format::Html => {
            let page = crate::html::Report {
                title: format!("realty-stream: {market}"),
                generated_at: Utc::now(),
                source: target.description.clone(),
                markets: vec![crate::html::section(&store, report).await?],
                latency: None,
                run: None,
            };
            println!("{}", crate::html::render(&page)?);
        }
    }
    Ok(())
}

fn print_csv(r: &MarketReport) {
    println!(
        "date,active_listings,pending_listings,median_price,average_price,median_price_per_sqft,median_days_on_market,new_listings,price_cuts,price_rises,delistings"
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.2}"));
    for s in &r.daily {
        let f = &s.figures;
        let day = &s.period;
        println!(
            "{day},{},{},{},{},{},{},{},{},{},{}",
            f.active_listings,
            f.pending_listings,
            opt(f.median_price),
            opt(f.average_price),
            opt(f.median_price_per_sqft),
            f.median_days_on_market
                .map_or(String::new(), |d| d.to_string()),
            f.new_listings_today,
            f.price_cuts_today,
            f.price_rises_today,
            f.delistings_today,
        );
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:+.1}%"))
}

fn print_text(r: &MarketReport) {
    let units = Units::of(r);
    println!(
        "{} ({})  as of {}",
        r.market,
        r.scope_key,
        r.live.as_of.map_or("-".into(), |t| t.to_rfc3339())
    );
    println!(
        "  amounts in                  {}, areas in {}",
        units
            .currency
            .unwrap_or("the market's currency (not known to this build)"),
        units.area
    );
    print_listings(r, &units);
    print_rents(r, &units);
    print_trends(r, &units);
}

/// How a report's amounts and areas are written.
struct Units<'a> {
    currency: Option<&'a str>,
    /// Per square metre outside the US (the metrics keep sqft; see `PerSquareMetre`).
    area: &'static str,
    median_price_per_area: Option<f64>,
    median_rent_per_area: Option<f64>,
}

impl<'a> Units<'a> {
    fn of(r: &'a MarketReport) -> Self {
        let f = &r.live;
        let (area, median_price_per_area, median_rent_per_area) =
            match (&r.per_square_metre, r.units.area) {
                (Some(per), AreaUnit::Sqm) => ("m²", per.median_price, per.median_rent),
                _ => ("sqft", f.median_price_per_sqft, f.median_rent_per_sqft),
            };
        Self {
            currency: r.units.currency,
            area,
            median_price_per_area,
            median_rent_per_area,
        }
    }

    fn money(&self, v: Option<f64>) -> String {
        amount(v, self.currency)
    }

    fn per_area(&self, v: Option<f64>) -> String {
        match (v.filter(|v| v.is_finite()), self.currency) {
            (Some(v), Some("USD")) => format!("${v:.2}"),
            (Some(v), Some(currency)) => format!("{v:.2} {currency}"),
            (Some(v), None) => format!("{v:.2}"),
            (None, _) => "-".into(),
        }
    }
}

/// The listings: counts, prices, days on market, the day's and week's changes, cuts.
fn print_listings(r: &MarketReport, units: &Units<'_>) {
    let f = &r.live;
    println!(
        "  active / pending listings   {} / {}",
        f.active_listings, f.pending_listings
    );
    println!(
        "  median / average price      {} / {}",
        units.money(f.median_price),
        units.money(f.average_price)
    );
    println!(
        "  median price per {:<11}{}",
        units.area,
        units.per_area(units.median_price_per_area)
    );
    println!(
        "  median days on market       {}",
        f.median_days_on_market
            .map_or("-".into(), |d| d.to_string())
    );
    println!(
        "  new / cuts / rises / gone   today {} / {} / {} / {}, 7 days {} / {} / {} / {}",
        f.new_listings_today,
        f.price_cuts_today,
        f.price_rises_today,
        f.delistings_today,
        f.new_listings_7d,
        f.price_cuts_7d,
        f.price_rises_7d,
        f.delistings_7d
    );
    println!(
        "  share with a cut            {}",
        f.share_active_with_cut
            .map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
    );
    println!(
        "  average cut (7 days)        {}",
        f.average_cut_pct_7d
            .map_or("-".into(), |p| format!("{p:.1}%"))
    );
}

/// Rentals, rents and gross yields, overall and by bedrooms.
fn print_rents(r: &MarketReport, units: &Units<'_>) {
    let f = &r.live;
    println!(
        "  rentals / median rent       {} / {} a month ({} per {})",
        f.active_rentals,
        units.money(f.median_rent),
        units.per_area(units.median_rent_per_area),
        units.area
    );
    let basis = match f.yield_basis {
        Some(YieldBasis::MarketRents) => " (market rents by bedrooms)",
        Some(YieldBasis::RentEstimates) => " (listings' rent estimates)",
        None => "",
    };
    println!(
        "  gross yield / price-to-rent {} / {}{basis}",
        f.gross_yield
            .map_or("-".into(), |y| format!("{:.2}%", y * 100.0)),
        f.price_to_rent.map_or("-".into(), |p| format!("{p:.1}"))
    );
    for b in &f.rents_by_bedrooms {
        println!(
            "    {:>2} bedrooms             {} rentals at {}, {} for sale at {}: yield {}",
            b.bedrooms.label(),
            b.rentals,
            units.money(b.median_rent),
            b.sale_listings,
            units.money(b.median_price),
            b.gross_yield
                .map_or("-".into(), |y| format!("{:.2}%", y * 100.0))
        );
    }
}

/// Anomalies, the price's moving averages and trends, and the snapshots kept.
fn print_trends(r: &MarketReport, units: &Units<'_>) {
    let t = &r.trends;
    println!(
        "  anomalies (price per area)  {}",
        r.live.anomalous_listings
    );
    println!(
        "  median price MA 7d / 30d    {} / {}",
        units.money(t.median_price_ma_7d),
        units.money(t.median_price_ma_30d)
    );
    println!(
        "  median price trend 7d / 30d {} / {}",
        pct(t.median_price_change_7d_pct),
        pct(t.median_price_change_30d_pct)
    );
    println!(
        "  snapshots                   {} daily, {} hourly (last 48 h)",
        r.daily.len(),
        r.hourly.len()
    );
}
