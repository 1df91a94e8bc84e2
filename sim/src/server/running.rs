//! A running simulator server: binding, serving, shutting down.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SimHandle;
use crate::config::SimConfig;
use crate::error::SimError;
use crate::market::Market;

/// How long [`SimServer::shutdown`] waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator server.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    handle: SimHandle,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimServer {
    /// Binds `addr` (port 0 picks a free port) and serves a market built from `config`.
    pub async fn start(addr: SocketAddr, config: SimConfig) -> Result<Self, SimError> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve(listener, config).await
    }

    /// Serves a market built from `config` on an already bound listener.
    pub async fn serve(listener: TcpListener, config: SimConfig) -> Result<Self, SimError> {
        config.faults.validate()?;
        let SimConfig {
            seed,
            market,
            faults,
        } = config;
        // Building thousands of listings per market is CPU work: keep it off the reactor.
        let market = tokio::task::spawn_blocking(move || Market::new(seed, market))
            .await
            .map_err(|e| SimError::ServerTask(e.to_string()))??;
        let (shutdown, signal) = watch::channel(false);
        let handle = SimHandle::new(market, faults, signal.clone());
        let addr = listener.local_addr()?;
        let router = handle.router();
        let mut stop = signal;
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // Also stops when the SimServer is dropped (the sender closes).
                    let _ = stop.wait_for(|&stopping| stopping).await;
                })
                .await
        });
        tracing::info!(%addr, seed, "simulated market serving");
        Ok(Self {
            addr,
            handle,
            shutdown,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// In-process access to the market.
    pub fn handle(&self) -> &SimHandle {
        &self.handle
    }

    /// Stops accepting, cuts slow responses short, waits briefly for requests in flight.
    pub async fn shutdown(self) -> Result<(), SimError> {
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result.map_err(SimError::Io),
            Ok(Err(join)) => Err(SimError::ServerTask(join.to_string())),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

/// Serves a market built from `config` on `listener`: the same as [`SimServer::serve`].
pub async fn serve(listener: TcpListener, config: SimConfig) -> Result<SimServer, SimError> {
    SimServer::serve(listener, config).await
}
