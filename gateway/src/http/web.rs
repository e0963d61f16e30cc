//! The web chat page (`clients/web`), served at `/` when `web.enabled`:
//! the static files `npm run build` puts in `web.dir`. The page opens its
//! socket on the gateway that served it, so that origin may (see
//! `auth::check_origin`).

use std::path::PathBuf;

use axum::{
    http::{header, HeaderValue},
    Router,
};
use chat_config::Validate;
use serde::{Deserialize, Serialize};
use tower_http::{
    compression::CompressionLayer, services::ServeDir, set_header::SetResponseHeaderLayer,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WebConfig {
    /// Serve the page. Off by default: an app with its own front end has
    /// no use for it.
    pub enabled: bool,
    /// The built page, relative to the working directory.
    pub dir: PathBuf,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: PathBuf::from("clients/web/dist"),
        }
    }
}

impl Validate for WebConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if self.enabled && !self.dir.join("index.html").is_file() {
            problems.push(format!(
                "web.dir: {} has no index.html (build the page: cd clients/web && npm ci && npm run build)",
                self.dir.display()
            ));
        }
    }
}

/// Only what the page needs: its own files and sockets to its own origin,
/// so a message body that slipped past escaping still could not load or
/// send anything elsewhere.
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// The page's files for every path no other route takes, when enabled.
pub fn router<S: Clone + Send + Sync + 'static>(config: &WebConfig) -> Router<S> {
    if !config.enabled {
        return Router::new();
    }
    Router::new()
        .fallback_service(ServeDir::new(&config.dir))
        // Revalidated on every load (a 304 when unchanged), so an upgraded
        // gateway never serves a page older than itself.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        // The script is mostly protobuf descriptors: 131 KB, 4x smaller in gzip.
        .layer(CompressionLayer::new())
}
