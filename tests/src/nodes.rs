//! The chat processes of a cluster as a test reaches them: where each
//! listens, what its `/metrics` report, and (for a gateway) a user's
//! socket to it.

use chat_client::{connect, ConnectOptions};
use chat_protocol::codec::Encoding;

use crate::{metrics::Metrics, options::token, process::Process, session::Session};

pub struct Gateway {
    /// Names its id (`gw<n>`) and log file.
    pub(crate) n: usize,
    /// Where clients reach it: loopback, or its network namespace.
    pub(crate) host: String,
    pub port: u16,
    pub process: Process,
}

pub struct Worker {
    /// Port of its `/metrics`, `/healthz`, `/readyz`.
    pub http_port: u16,
    pub process: Process,
}

impl Gateway {
    /// The id it runs with (its receipts subject, its pod name).
    pub fn id(&self) -> String {
        format!("gw{}", self.n)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}:{}/v1/ws", self.host, self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host, self.port)
    }

    /// An HTTP call to this gateway as `token` (a JWT or the service
    /// token): the status and the JSON answer (`Null` when there is none).
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    /// `GET path` as `token`: the status and the JSON answer.
    pub async fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        self.call(token, reqwest::Method::GET, path, None).await
    }

    pub fn connect_options(&self, user: &str, encoding: Encoding) -> ConnectOptions {
        ConnectOptions::new(self.ws_url(), token(user), encoding)
    }

    /// Opens a socket for `user`, speaking JSON.
    pub async fn connect(&self, user: &str) -> Session {
        self.connect_with(user, Encoding::Json).await
    }

    /// Opens a socket for `user` speaking `encoding`.
    pub async fn connect_with(&self, user: &str, encoding: Encoding) -> Session {
        let (writer, reader) = connect(&self.connect_options(user, encoding))
            .await
            .unwrap_or_else(|e| panic!("{user} could not connect to {}: {e}", self.id()));
        Session::new(user, writer, reader)
    }

    pub async fn metrics(&self) -> Metrics {
        Metrics::scrape(&self.url("/metrics")).await
    }

    /// One metric, summed over samples whose labels match.
    pub async fn metric(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics().await.total(metric, labels)
    }
}

impl Worker {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub async fn metrics(&self) -> Metrics {
        Metrics::scrape(&self.url("/metrics")).await
    }
}
