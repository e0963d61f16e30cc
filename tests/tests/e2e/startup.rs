//! A binary started with a bad configuration says what is wrong on one line
//! and exits with status 2; no credential ever reaches its output.

use std::process::Command;

use chat_tests::cluster::bin;

/// Runs `program` with `env` and returns (exit code, stderr).
fn run(program: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin(program));
    // Whatever the caller's environment says, these runs see only `env`.
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SECRET: (&str, &str) = (
    "CHAT_GATEWAY_JWT__HS256_SECRET",
    "test-secret-that-is-at-least-32-bytes-long",
);

/// (binary, environment, the field its error must name)
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn each_invalid_setting_is_named_on_one_line_with_exit_status_2() {
    let cases: &[Case] = &[
        ("gateway", &[], "jwt.hs256_secret"),
        (
            "gateway",
            &[
                SECRET,
                ("CHAT_GATEWAY_NATS_URL", "http://app:hunter2@nats:4222"),
            ],
            "nats_url",
        ),
        (
            "gateway",
            &[SECRET, ("CHAT_GATEWAY_REDIS_URL", "hunter2")],
            "redis_url",
        ),
        (
            "gateway",
            &[SECRET, ("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS", "0")],
            "limits.max_connections",
        ),
        (
            "gateway",
            &[SECRET, ("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS", "many")],
            "max_connections",
        ),
        (
            "gateway",
            &[SECRET, ("CHAT_GATEWAY_LIMITS__SEND_RATE_PER_USER", "0")],
            "limits.send_rate_per_user",
        ),
        (
            "gateway",
            &[SECRET, ("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS_PER_IP", "0")],
            "limits.max_connections_per_ip",
        ),
        (
            "gateway",
            &[SECRET, ("CHAT_GATEWAY_DRAIN_TIMEOUT_MS", "0")],
            "drain_timeout_ms",
        ),
        (
            "gateway",
            &[SECRET, ("CHAT_GATEWAY_CANARY__INTERVAL_MS", "0")],
            "canary.interval_ms",
        ),
        (
            "gateway",
            &[
                SECRET,
                (
                    "CHAT_GATEWAY_POSTGRES__URL",
                    "postgres://u:hunter2@x:notaport/db",
                ),
            ],
            "postgres.url",
        ),
        (
            "gateway",
            &[
                SECRET,
                ("CHAT_GATEWAY_WEB__ENABLED", "true"),
                ("CHAT_GATEWAY_WEB__DIR", "/nonexistent/web"),
            ],
            "web.dir",
        ),
        (
            "worker",
            &[("CHAT_WORKER_BATCH__MAX_MESSAGES", "0")],
            "batch.max_messages",
        ),
        (
            "worker",
            &[("CHAT_WORKER_NATS_URL", "nats:/hunter2@x")],
            "nats_url",
        ),
        // A misspelt variable would otherwise leave its field at the default.
        (
            "gateway",
            &[SECRET, ("CHAT_GATEWAY_LIMITS__MAX_CONECTIONS", "10")],
            "chat_gateway_limits__max_conections",
        ),
        (
            "worker",
            &[("CHAT_WORKER_HTTP_LISTEN_ADDR", "0.0.0.0:1")],
            "chat_worker_http_listen_addr",
        ),
    ];
    for (program, env, field) in cases {
        let (code, stderr) = run(program, env);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(code, Some(2), "{program} {env:?}: {stderr}");
        assert_eq!(lines.len(), 1, "{program} {env:?}: not one line: {stderr}");
        let named = lines[0].to_lowercase().contains(field);
        assert!(named, "{program} {env:?}: {field} not named: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "{program} {env:?} printed a secret: {stderr}"
        );
    }
}

#[test]
fn a_backend_that_cannot_be_reached_is_reported_without_its_credentials() {
    let port = chat_tests::free_port().to_string();
    let nats = format!("nats://app:hunter2@127.0.0.1:{port}");
    let (code, stderr) = run(
        "gateway",
        &[
            SECRET,
            ("CHAT_GATEWAY_NATS_URL", &nats),
            ("CHAT_GATEWAY_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert_ne!(code, Some(0));
    assert!(!stderr.is_empty());
    assert!(!stderr.contains("hunter2"), "printed a secret: {stderr}");
}

/// `config-fields` lists every variable a binary reads (the deploy checks
/// hold the Helm chart's variables against it), without needing a valid
/// configuration.
#[test]
fn config_fields_lists_every_variable() {
    for (program, expected) in [
        (
            "gateway",
            &[
                "CHAT_GATEWAY_JWT__HS256_SECRET",
                "CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS",
                "CHAT_GATEWAY_DRAIN_DELAY_MS",
            ][..],
        ),
        (
            "worker",
            &["CHAT_WORKER_HTTP_LISTEN", "CHAT_WORKER_POSTGRES__URL"][..],
        ),
    ] {
        let out = Command::new(bin(program))
            .arg("config-fields")
            .env_clear()
            .output()
            .expect("run the binary");
        assert!(out.status.success(), "{program}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let vars: Vec<&str> = stdout.lines().collect();
        for var in expected {
            assert!(vars.contains(var), "{program} lacks {var}: {vars:?}");
        }
    }
}
