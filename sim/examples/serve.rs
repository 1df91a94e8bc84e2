//! Runs the simulator until Ctrl-C (the `realty sim serve` command wraps the same API):
//! `cargo run -p realty-sim --example serve -- [port] [seed] [fault spec] [listings per market]`,
//! for example `-- 8080 7 rate_limit=0.05,page_shift=0.1 2000`.

use std::net::SocketAddr;

use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let faults: FaultConfig = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or_default();
    let listings: u32 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(realty_sim::DEFAULT_LISTINGS_PER_MARKET);
    let config = SimConfig {
        seed,
        market: MarketConfig {
            listings_per_market: listings,
            ..MarketConfig::default()
        },
        faults,
    };
    let server = SimServer::start(SocketAddr::from(([127, 0, 0, 1], port)), config).await?;
    println!("{}", server.base_url());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await?;
    Ok(())
}
