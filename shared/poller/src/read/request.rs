//! The HTTP requests a read sends: a GET or a POST with its headers, and RapidAPI's headers.

use super::SourceEndpoint;
use crate::fetch::PageRequest;

pub(crate) struct Get {
    pub(crate) url: String,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl PageRequest for Get {
    fn build(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut r = client.get(&self.url).query(&self.query);
        for (k, v) in &self.headers {
            r = r.header(*k, v);
        }
        r
    }
    fn url(&self) -> String {
        self.url.clone()
    }
}

pub(super) struct Post {
    pub(super) url: String,
    pub(super) body: serde_json::Value,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl PageRequest for Post {
    fn build(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut r = client.post(&self.url).json(&self.body);
        for (k, v) in &self.headers {
            r = r.header(*k, v);
        }
        r
    }
    fn url(&self) -> String {
        self.url.clone()
    }
}

pub(super) fn rapidapi_headers(endpoint: &SourceEndpoint) -> Vec<(&'static str, String)> {
    let host = endpoint
        .base_url
        .split("://")
        .nth(1)
        .unwrap_or(&endpoint.base_url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    vec![
        ("X-RapidAPI-Key", endpoint.key.clone()),
        ("X-RapidAPI-Host", host),
    ]
}
