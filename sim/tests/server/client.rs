//! The tests' HTTP client: reqwest, pointed at one simulator, returning the bytes the
//! server sent (no decompression), and a JSON client over it that can retry as a careful
//! poller does.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::Value;

/// The host every test request names (and resolves to the server under test), so absolute
/// links are the same across servers.
pub const HOST: &str = "sim.test";
/// A RESO token as the simulator's token endpoint issues it now.
pub fn reso_token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    realty_sim::issue_reso_token(now)
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Requests to one simulator, each on a fresh connection, as the tests wrote them.
#[derive(Debug, Clone)]
pub struct SimHttp {
    http: reqwest::Client,
    base: Url,
}

impl SimHttp {
    pub fn new(addr: SocketAddr) -> Self {
        let http = reqwest::Client::builder()
            .resolve(HOST, addr)
            // The tests check the encoding the server chose, so bodies come as sent.
            .no_gzip()
            .pool_max_idle_per_host(0)
            .build()
            .expect("the HTTP client builds");
        let base = Url::parse(&format!("http://{HOST}/")).expect("the base URL parses");
        Self { http, base }
    }

    /// One request to `target` (a path and query), read to the end within `timeout`. Errors carry no URL: the port changes every run.
    pub async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<HttpResponse, reqwest::Error> {
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let url = self.base.join(target).expect("a target on the simulator");
        let mut request = self
            .http
            .request(method, url)
            .timeout(timeout)
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.map_err(reqwest::Error::without_url)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(reqwest::Error::without_url)?;
        Ok(HttpResponse {
            status,
            headers,
            body: body.to_vec(),
        })
    }
}

/// Why a call did not produce a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Status(u16),
    NotJson,
    Transport(String),
}

/// A listing-API client. With `retries`, it retries what a careful client retries:
/// timeouts, 429 (after a short wait rather than `Retry-After`, so tests stay fast), 5xx
/// and bodies that are not JSON.
#[derive(Debug, Clone)]
pub struct Client {
    pub http: SimHttp,
    pub timeout: Duration,
    pub retries: u32,
}

impl Client {
    pub fn naive(addr: SocketAddr) -> Self {
        Self {
            http: SimHttp::new(addr),
            timeout: Duration::from_secs(30),
            retries: 0,
        }
    }

    pub fn careful(addr: SocketAddr, timeout: Duration) -> Self {
        Self {
            http: SimHttp::new(addr),
            timeout,
            retries: 12,
        }
    }

    pub async fn call(&self, method: &str, target: &str, body: &[u8]) -> Result<Value, Failure> {
        let mut attempt = 0;
        loop {
            match self.once(method, target, body).await {
                Ok(value) => return Ok(value),
                Err(failure) if attempt < self.retries => {
                    attempt += 1;
                    let wait = match &failure {
                        Failure::Status(429) => Duration::from_millis(20),
                        _ => Duration::from_millis(2),
                    };
                    tokio::time::sleep(wait).await;
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    async fn once(&self, method: &str, target: &str, body: &[u8]) -> Result<Value, Failure> {
        let mut headers = vec![("Content-Type", "application/json")];
        let auth = format!("Bearer {}", reso_token());
        if target.starts_with("/reso/") {
            headers.push(("Authorization", auth.as_str()));
        }
        let response = self
            .http
            .send(method, target, &headers, body, self.timeout)
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    Failure::Timeout
                } else {
                    Failure::Transport(e.to_string())
                }
            })?;
        if response.status != 200 {
            return Err(Failure::Status(response.status));
        }
        response.json().map_err(|_| Failure::NotJson)
    }

    pub async fn get(&self, target: &str) -> Result<Value, Failure> {
        self.call("GET", target, b"").await
    }

    pub async fn post(&self, target: &str, body: &Value) -> Result<Value, Failure> {
        self.call("POST", target, body.to_string().as_bytes()).await
    }
}
