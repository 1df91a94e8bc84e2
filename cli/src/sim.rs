//! `realty sim serve`: the simulated market over HTTP, and finding a running one.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use realty_infra::{emulator, stack};
use realty_poller::config::ApiKeys;
use realty_poller::reso_auth::{ClientCredentials, ResoKey};
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use serde::{Deserialize, Serialize};

/// Where `realty sim serve` records its address, for `realty invoke poller`.
fn state_file() -> Result<PathBuf> {
    Ok(stack::state_dir(&emulator::project_root()?).join("sim.json"))
}

#[derive(Serialize, Deserialize)]
struct Running {
    base_url: String,
    pid: u32,
}

pub fn config(
    seed: u64,
    faults: &str,
    markets: &[String],
    listings: Option<u32>,
) -> Result<SimConfig> {
    let faults: FaultConfig = if faults.is_empty() {
        FaultConfig::none()
    } else {
        faults.parse()?
    };
    let mut market = MarketConfig {
        markets: markets.to_vec(),
        ..MarketConfig::default()
    };
    if let Some(n) = listings {
        market.listings_per_market = n;
    }
    Ok(SimConfig {
        seed,
        market,
        faults,
    })
}

pub async fn serve(port: u16, config: SimConfig) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let server = SimServer::start(addr, config)
        .await
        .with_context(|| format!("cannot serve on {addr}"))?;
    let base_url = server.base_url();
    let path = state_file()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &path,
        serde_json::to_string(&Running {
            base_url: base_url.clone(),
            pid: std::process::id(),
        })?,
    )?;
    println!(
        "simulated market at {base_url} (seed {}), simulated time {}",
        server.handle().seed(),
        server.handle().now()
    );
    println!("  Zillow:  GET  {base_url}/propertyExtendedSearch?location=Nashville,%20TN&page=1");
    println!("  Realtor: POST {base_url}/properties/v3/list");
    println!("  RESO:    GET  {base_url}/reso/odata/Property  (Authorization: Bearer <token>)");
    // What `realty secrets set --source reso` takes to poll this simulator.
    println!(
        "  RESO token: POST {base_url}/reso/token  (client credentials: client_id {}, client_secret {}, scope {})",
        realty_sim::RESO_CLIENT_ID,
        realty_sim::RESO_CLIENT_SECRET,
        realty_sim::RESO_SCOPE
    );
    println!(
        "  control: POST {base_url}/control/advance, GET {base_url}/control/state, GET {base_url}/control/ground-truth"
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    let _ = std::fs::remove_file(&path);
    server.shutdown().await?;
    Ok(())
}

/// The keys the simulator at `base_url` takes: any RapidAPI key for Zillow and Realtor.com,
/// and for RESO the client credentials its token endpoint accepts.
pub fn poller_keys(base_url: &str) -> ApiKeys {
    ApiKeys {
        zillow: Some("local".into()),
        realtor: Some("local".into()),
        reso: Some(ResoKey::ClientCredentials(ClientCredentials {
            token_url: format!("{base_url}/reso/token"),
            client_id: realty_sim::RESO_CLIENT_ID.into(),
            client_secret: realty_sim::RESO_CLIENT_SECRET.into(),
            scope: Some(realty_sim::RESO_SCOPE.into()),
        })),
    }
}

/// The base URL of a `realty sim serve` still running, if any.
pub fn running() -> Option<String> {
    let text = std::fs::read_to_string(state_file().ok()?).ok()?;
    let running: Running = serde_json::from_str(&text).ok()?;
    emulator::pid_alive(running.pid).then_some(running.base_url)
}
