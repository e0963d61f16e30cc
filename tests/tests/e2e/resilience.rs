//! Crashes do not lose, duplicate or reorder anything.

use std::process::Command;

use chat_tests::{Cluster, ClusterOptions};

use crate::message_path::run_mixed_load;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_and_duplicates_nothing() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let victim = cluster.workers[0].pid();
    run_mixed_load(&cluster, 2000, move |_| {
        let status = Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "SIGKILL the worker");
    })
    .await;
}
