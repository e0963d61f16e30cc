//! One call of the webhook: the notification as JSON, signed with
//! HMAC-SHA256, and what its answer means: delivered, worth another try,
//! or refused for good.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::{config::NotifyConfig, error::WorkerError};

/// Header with the body's signature: `v1=<hex of HMAC-SHA256(secret,
/// "<timestamp>.<body>")>`.
pub const SIGNATURE: &str = "x-chat-signature";
/// Header with the Unix time (s) the signature covers; a receiver refuses
/// old ones, so a captured call cannot be replayed later.
pub const TIMESTAMP: &str = "x-chat-timestamp";
/// Header with the notified message's id: the same on every try, so a
/// receiver pushes once per message.
pub const DELIVERY: &str = "x-chat-delivery";

/// What the webhook is told: a stored message and who should hear of it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub room: String,
    pub seq: u64,
    pub message_id: String,
    pub sender: String,
    pub body: String,
    pub ts_ms: i64,
    pub direct: bool,
    /// Members with no socket: the other member of a direct room, or
    /// those the message mentions.
    pub recipients: Vec<String>,
}

/// The webhook's client; cheap to share.
pub struct Webhook {
    http: reqwest::Client,
    url: reqwest::Url,
    secret: Vec<u8>,
}

impl Webhook {
    /// `None` when notifications are off.
    pub fn new(config: &NotifyConfig) -> Result<Option<Self>, WorkerError> {
        if !config.enabled() {
            return Ok(None);
        }
        let startup = |e: &dyn std::fmt::Display| WorkerError::Startup(format!("notify: {e}"));
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A redirect is the receiver's misconfiguration, and following
            // one would POST a signed body wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| startup(&e))?;
        Ok(Some(Self {
            http,
            url: config.webhook_url.parse().map_err(|e| startup(&e))?,
            secret: config.secret.expose().as_bytes().to_vec(),
        }))
    }

    /// Calls the webhook once: `Ok` on a 2xx answer. A timeout, a refused
    /// connection, 408, 429 and 5xx are worth another try; any other answer
    /// (a redirect, 4xx) is refused for good.
    pub async fn call(&self, notification: &Notification) -> Result<(), WorkerError> {
        let body = serde_json::to_vec(notification)
            .map_err(|e| WorkerError::BadEnvelope(e.to_string()))?;
        let timestamp = chat_protocol::now_ms() / 1000;
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP, timestamp.to_string())
            .header(SIGNATURE, sign(&self.secret, timestamp, &body))
            .header(DELIVERY, notification.message_id.as_str())
            .body(body)
            .send()
            .await;
        let status = match response {
            Ok(response) => response.status(),
            Err(e) => return Err(WorkerError::webhook(format!("{e}"), false)),
        };
        if status.is_success() {
            return Ok(());
        }
        let retry = status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        let why = if status.is_redirection() {
            format!("answered {status}; redirects are not followed")
        } else {
            format!("answered {status}")
        };
        Err(WorkerError::webhook(why, !retry))
    }
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}
