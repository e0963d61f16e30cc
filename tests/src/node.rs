//! The JavaScript clients' own tests (`node --test`), run against a cluster
//! a Rust test started, which passes its addresses in the environment.

use std::{path::Path, process::Stdio};

/// Runs `node --test test/` in `dir` with `env`, each test bounded by
/// `timeout_ms` (so a client that never finishes fails rather than hangs),
/// and fails unless all `count` tests ran and passed.
pub async fn node_tests(dir: &Path, env: &[(&str, String)], timeout_ms: u64, count: usize) {
    let out = tokio::process::Command::new("node")
        .args(["--test", &format!("--test-timeout={timeout_ms}"), "test/"])
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("node runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the tests in {} failed:\n{report}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("# pass {count}\n")),
        "not all {count} tests ran:\n{report}"
    );
}
