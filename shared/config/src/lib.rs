//! Layered configuration: defaults < optional TOML file < environment.
//!
//! Each binary owns one struct; this module loads it and reports every bad
//! field by name before the binary starts anything.

mod duration;

use std::{fmt, time::Duration};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    value::{Dict, Map, Value},
    Figment, Metadata, Profile, Provider,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub use duration::{millis, secs};

/// Environment variable that names an optional TOML file.
pub const CONFIG_FILE_ENV: &str = "CHAT_CONFIG";

/// A value that must never reach a log line or a Debug print.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A backend URL (NATS, Redis) that may carry credentials: used as is,
/// printed (Debug, Display, error messages) with them redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BackendUrl(String);

impl BackendUrl {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The URL itself, credentials included; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackendUrl {
    /// `scheme://user:***@host/...`; a user-info without ':' (a NATS token)
    /// is hidden whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str("<not a URL>");
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let shown = match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***"),
                    None => "***".into(),
                };
                write!(f, "{scheme}://{shown}@{host}{path}")
            }
            None => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendUrl({self})")
    }
}

/// Why the configuration was refused; lists every bad field, on one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Loads a binary's configuration, or prints why not on one line of stderr
/// and exits with status 2 (a usage error: restarting will not help).
pub fn load_or_exit<T>(program: &str, env_prefix: &str) -> T
where
    T: Default + Serialize + DeserializeOwned + Validate,
{
    match load(env_prefix) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{program}: {}", e.to_string().replace('\n', " "));
            std::process::exit(2)
        }
    }
}

/// A configuration struct that can check itself after loading.
pub trait Validate {
    /// Appends one line per bad field, each naming the field.
    fn validate(&self, problems: &mut Vec<String>);
}

/// Loads `T` from its defaults, then `$CHAT_CONFIG` (TOML) if set, then
/// environment variables starting with `env_prefix` (`__` separates nested
/// fields: `CHAT_GATEWAY_JWT__HS256_SECRET`), and validates the result.
pub fn load<T>(env_prefix: &str) -> Result<T, ConfigError>
where
    T: Default + Serialize + DeserializeOwned + Validate,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Ok(path) = std::env::var(CONFIG_FILE_ENV) {
        figment = figment.merge(Toml::file_exact(path));
    }
    let env = Env::prefixed(env_prefix).split("__");
    // serde ignores unknown keys, so a misspelt variable would silently
    // leave its field at the default: name every one instead.
    let known = env_vars::<T>(env_prefix);
    let unknown: Vec<String> = env
        .iter()
        .map(|(key, _)| env_var_name(env_prefix, key.as_str()))
        .filter(|name| !known.contains(name))
        .collect();
    let mut problems = Vec::new();
    if !unknown.is_empty() {
        problems.push(format!(
            "unknown environment variables (no such field): {}",
            unknown.join(", ")
        ));
    }
    // Parsing stops at the first value its type refuses (a zero where a
    // count or timeout must be > 0); the relations between fields can only
    // be checked once every value has parsed.
    let env = Environment {
        env,
        prefix: env_prefix.to_owned(),
    };
    match figment.merge(env).extract::<T>() {
        Ok(config) => {
            config.validate(&mut problems);
            if problems.is_empty() {
                return Ok(config);
            }
        }
        Err(e) => problems.extend(e.into_iter().map(|e| field_error(&e))),
    }
    Err(ConfigError::Invalid(problems))
}

/// A parse error led by its field (`limits.ack_timeout_ms: ...`): figment
/// names only the variable or file key that set it.
fn field_error(e: &figment::Error) -> String {
    if e.path.is_empty() {
        e.to_string()
    } else {
        format!("{}: {e}", e.path.join("."))
    }
}

/// The environment as figment reads it, but with errors that name the
/// variable (`CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS`, not `LIMITS.ACK_TIMEOUT_MS`).
struct Environment {
    env: Env,
    prefix: String,
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        let prefix = self.prefix.clone();
        Metadata::named("the environment")
            .interpolater(move |_: &Profile, keys: &[&str]| env_var_name(&prefix, &keys.join(".")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.env.data()
    }
}

/// Every environment variable that sets a field of `T`: the prefix, then
/// the field's path in upper case with `__` between nested fields.
pub fn env_vars<T: Default + Serialize>(env_prefix: &str) -> Vec<String> {
    fn walk(value: &Value, path: &str, prefix: &str, out: &mut Vec<String>) {
        match value {
            Value::Dict(_, fields) if !fields.is_empty() => {
                for (key, value) in fields {
                    let child = match path {
                        "" => key.clone(),
                        _ => format!("{path}.{key}"),
                    };
                    walk(value, &child, prefix, out);
                }
            }
            _ => out.push(env_var_name(prefix, path)),
        }
    }
    let defaults = Value::serialize(T::default()).expect("defaults serialize");
    let mut out = Vec::new();
    walk(&defaults, "", env_prefix, &mut out);
    out
}

/// `jwt.hs256_secret` → `CHAT_GATEWAY_JWT__HS256_SECRET`.
fn env_var_name(env_prefix: &str, key: &str) -> String {
    format!(
        "{env_prefix}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// Settings of the JetStream ingest stream, shared by gateway and worker so
/// that whichever starts first creates the same stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// Copies of each message in a NATS cluster (1 for a single server).
    pub replicas: usize,
    /// How long JetStream remembers `Nats-Msg-Id`s, which drop a gateway's
    /// own publish retries (a client's resend is a new envelope).
    #[serde(rename = "duplicate_window_secs", with = "secs::non_zero")]
    pub duplicate_window: Duration,
    /// How long the ingest stream keeps a send, consumed or not, so that it
    /// can be replayed.
    #[serde(rename = "max_age_secs", with = "secs")]
    pub max_age: Duration,
    /// Bytes the ingest stream keeps; past it the oldest sends go first.
    /// A send dropped unconsumed was never acked to its sender, who resends.
    /// Split evenly over the partitions' streams.
    pub max_bytes: i64,
    /// Ingest partitions (P): a room's sends go to one, and each has one
    /// owning worker at a time, so P caps the workers that store sends. Fixed
    /// at install (decision 15); every gateway and worker must agree, and one
    /// that does not refuses to start. 4 by default: each partition is a
    /// stream and a consumer of its own, and at 16 NATS spent 40–65 % more
    /// CPU per send (bench/RESULTS.md §10).
    pub partitions: u32,
    /// Longest any publish to NATS, or the wait for JetStream's ack, may
    /// take: while NATS is away a publish would otherwise wait for it.
    #[serde(rename = "publish_timeout_ms", with = "millis::non_zero")]
    pub publish_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            partitions: 4,
            publish_timeout: Duration::from_secs(5),
        }
    }
}

impl Validate for StreamConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if !(1..=5).contains(&self.replicas) {
            problems.push(format!(
                "stream.replicas must be 1..=5, got {}",
                self.replicas
            ));
        }
        if self.max_age < self.duplicate_window {
            problems.push("stream.max_age_secs must be >= stream.duplicate_window_secs".into());
        }
        if !(1..=1024).contains(&self.partitions) {
            problems.push(format!(
                "stream.partitions must be 1..=1024, got {}",
                self.partitions
            ));
        }
        if self.max_bytes < 1 << 20 {
            problems.push(format!(
                "stream.max_bytes must be at least 1 MiB, got {}",
                self.max_bytes
            ));
        }
    }
}

/// Log output settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `json` for production, `pretty` for people.
    pub format: LogFormat,
    /// `tracing` filter directives, e.g. `info,chat_gateway=debug`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Checks the NATS and Redis URLs every binary needs.
pub fn check_backend_urls(
    nats_url: &BackendUrl,
    redis_url: &BackendUrl,
    problems: &mut Vec<String>,
) {
    // A NATS cluster is a comma-separated list of its servers' URLs.
    for server in nats_url.expose().split(',') {
        check_url("nats_url", server.trim(), &["nats", "tls"], problems);
    }
    check_url(
        "redis_url",
        redis_url.expose(),
        &["redis", "rediss"],
        problems,
    );
}

/// Checks a URL-like setting has one of the given schemes; the message
/// shows the value with any credentials redacted.
pub fn check_url(field: &str, value: &str, schemes: &[&str], problems: &mut Vec<String>) {
    let ok = schemes.iter().any(|s| {
        value
            .strip_prefix(s)
            .is_some_and(|rest| rest.starts_with("://"))
    });
    if !ok {
        problems.push(format!(
            "{field} must be a URL starting with {}, got \"{}\"",
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or "),
            BackendUrl::new(value)
        ));
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    #[derive(Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Demo {
        pool: Pool,
        stream: StreamConfig,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(default)]
    struct Pool {
        size: NonZeroUsize,
        #[serde(rename = "timeout_ms", with = "millis::non_zero")]
        timeout: Duration,
    }

    impl Default for Pool {
        fn default() -> Self {
            Self {
                size: NonZeroUsize::new(16).unwrap(),
                timeout: Duration::from_millis(1500),
            }
        }
    }

    impl Validate for Demo {
        fn validate(&self, problems: &mut Vec<String>) {
            self.stream.validate(problems);
        }
    }

    #[test]
    fn environment_overrides_defaults_and_bad_fields_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DEMO_STREAM__MAX_AGE_SECS", "1");
            jail.set_env("DEMO_STREAM__REPLICAS", "9");
            let err = load::<Demo>("DEMO_").err().expect("invalid");
            let text = err.to_string();
            assert!(text.contains("stream.max_age_secs"), "{text}");
            assert!(text.contains("stream.replicas"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn a_zero_count_or_duration_is_refused_naming_its_field() {
        for (var, field) in [
            ("DEMO_POOL__SIZE", "pool.size: "),
            ("DEMO_POOL__TIMEOUT_MS", "pool.timeout_ms: "),
            (
                "DEMO_STREAM__DUPLICATE_WINDOW_SECS",
                "stream.duplicate_window_secs: ",
            ),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env(var, "0");
                jail.set_env("DEMO_POOL__SIZ", "4");
                let text = load::<Demo>("DEMO_").err().expect("invalid").to_string();
                assert!(text.contains(field), "{text}");
                assert!(text.contains(var), "{text}");
                assert!(!text.contains('\n'), "{text}");
                // Reported along with the problems found before parsing.
                assert!(text.contains("(no such field): DEMO_POOL__SIZ;"), "{text}");
                Ok(())
            });
        }
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[pool]\ntimeout_ms = 0\n")?;
            jail.set_env(CONFIG_FILE_ENV, "c.toml");
            let text = load::<Demo>("DEMO_").err().expect("invalid").to_string();
            assert!(text.contains("pool.timeout_ms: "), "{text}");
            Ok(())
        });
    }

    #[test]
    fn unknown_environment_variables_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DEMO_POOL__SIZE", "3");
            jail.set_env("DEMO_POOL__SIZ", "4");
            jail.set_env("DEMO_STREAMS", "x");
            let text = load::<Demo>("DEMO_").err().expect("invalid").to_string();
            assert!(
                text.contains("unknown environment variables (no such field): "),
                "{text}"
            );
            assert!(text.contains("DEMO_POOL__SIZ"), "{text}");
            assert!(text.contains("DEMO_STREAMS"), "{text}");
            assert!(!text.contains("DEMO_POOL__SIZE"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn env_vars_lists_every_leaf_field() {
        let vars = env_vars::<Demo>("DEMO_");
        assert!(vars.contains(&"DEMO_POOL__SIZE".to_string()));
        assert!(vars.contains(&"DEMO_POOL__TIMEOUT_MS".to_string()));
        assert!(vars.contains(&"DEMO_STREAM__MAX_AGE_SECS".to_string()));
        assert_eq!(vars.len(), 8, "{vars:?}");
    }

    #[test]
    fn durations_are_written_as_whole_units() {
        let defaults = Value::serialize(Demo::default()).unwrap();
        let number = |key| defaults.clone().find(key).and_then(|v| v.to_u128());
        assert_eq!(number("pool.timeout_ms"), Some(1500));
        assert_eq!(number("stream.duplicate_window_secs"), Some(120));
    }

    #[test]
    fn file_sits_between_defaults_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[pool]\nsize = 3\ntimeout_ms = 250\n[stream]\nreplicas = 2\n",
            )?;
            jail.set_env(CONFIG_FILE_ENV, "c.toml");
            jail.set_env("DEMO_STREAM__REPLICAS", "3");
            jail.set_env("DEMO_STREAM__MAX_AGE_SECS", "600");
            let demo = load::<Demo>("DEMO_").expect("valid");
            assert_eq!(demo.pool.size.get(), 3);
            assert_eq!(demo.pool.timeout, Duration::from_millis(250));
            assert_eq!(demo.stream.replicas, 3);
            assert_eq!(demo.stream.max_age, Duration::from_secs(600));
            Ok(())
        });
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret([redacted])"
        );
    }

    #[test]
    fn backend_urls_print_without_credentials() {
        for (url, shown) in [
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            ("nats://app:hunter2@nats:4222", "nats://app:***@nats:4222"),
            ("nats://hunter2@nats:4222", "nats://***@nats:4222"),
            ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
            ("hunter2", "<not a URL>"),
        ] {
            let url = BackendUrl::new(url);
            assert_eq!(url.to_string(), shown);
            assert!(!format!("{url:?}").contains("hunter2"));
        }
        let mut problems = Vec::new();
        check_url("nats_url", "http://u:hunter2@x", &["nats"], &mut problems);
        assert!(problems[0].starts_with("nats_url must be"));
        assert!(!problems[0].contains("hunter2"), "{}", problems[0]);
    }
}
