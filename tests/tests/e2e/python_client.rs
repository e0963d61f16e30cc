//! The Python example (`clients/python/example.py`, written from
//! docs/protocol.md alone) against a real cluster: it sends, resumes from
//! where a previous run stopped on another gateway, and loses nothing when
//! its gateway is killed. `scripts/test.sh` makes its virtualenv
//! (`.tools/py`, from `clients/python/requirements.txt`) first.

use std::{path::PathBuf, process::Stdio, time::Duration};

use chat_tests::{Cluster, ClusterOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example run by the virtualenv's Python, as `user`.
fn example(
    cluster: &Cluster,
    user: &str,
    gateways: &[usize],
    args: &[&str],
) -> tokio::process::Command {
    let python = root().join(".tools/py/bin/python");
    assert!(
        python.exists(),
        "make the example's virtualenv first: python3 -m venv .tools/py && \
         .tools/py/bin/pip install -r clients/python/requirements.txt"
    );
    let mut command = tokio::process::Command::new(python);
    command
        .arg(root().join("clients/python/example.py"))
        .args(["--token", &cluster.token(user), "--room", "py"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for &g in gateways {
        command.args(["--url", &cluster.gateway(g).ws_url()]);
    }
    command
}

/// The `#seq sender: body` lines the example printed, as (seq, line).
fn messages(stdout: &str) -> Vec<(u64, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (seq, rest) = l.strip_prefix('#')?.split_once(' ')?;
            Some((seq.parse().ok()?, rest.to_string()))
        })
        .collect()
}

fn assert_consecutive(seqs: &[u64]) {
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "no gap, no duplicate: {seqs:?}");
    }
}

async fn run(mut command: tokio::process::Command) -> String {
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the example finishes")
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_sends_then_resumes_on_another_gateway() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("py", &["ann", "bob"]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("py.seq");
    let state = state.to_str().unwrap();

    let sends: Vec<String> = (0..5).map(|i| format!("py {i}")).collect();
    let mut args = vec!["--state", state];
    for s in &sends {
        args.extend(["--send", s]);
    }
    let first = run(example(&cluster, "ann", &[0], &args)).await;
    let printed = messages(&first);
    let mine: Vec<&str> = printed
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("ann: py "))
        .collect();
    assert_eq!(mine, ["0", "1", "2", "3", "4"], "{first}");
    assert_eq!(first.lines().filter(|l| l.starts_with("ack #")).count(), 5);
    let last: u64 = std::fs::read_to_string(state).unwrap().parse().unwrap();
    assert_eq!(
        last,
        printed.last().unwrap().0,
        "the state keeps the last seq"
    );

    // While ann's client is away, bob talks; her next run, on the other
    // gateway, starts from the seq it kept and prints just what she missed.
    let mut bob = cluster.gateway(1).connect("bob").await;
    for i in 0..3 {
        bob.send_and_wait(
            "py",
            &format!("bob-{i}"),
            &format!("while you were away {i}"),
        )
        .await
        .unwrap();
    }
    let second = run(example(
        &cluster,
        "ann",
        &[1],
        &["--state", state, "--listen", "1"],
    ))
    .await;
    let missed = messages(&second);
    let lines: Vec<&str> = missed.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        [
            "bob: while you were away 0",
            "bob: while you were away 1",
            "bob: while you were away 2"
        ],
        "{second}"
    );
    assert_eq!(missed[0].0, last + 1, "resumed right after the kept seq");
    assert_consecutive(&missed.iter().map(|(s, _)| *s).collect::<Vec<_>>());
    let stored = cluster.stored("py").await;
    for s in &sends {
        assert_eq!(
            stored.iter().filter(|m| &m.3 == s).count(),
            1,
            "{s} stored once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_loses_nothing_when_its_gateway_is_killed() {
    let mut cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("py", &["ann"]).await;
    let sends: Vec<String> = (0..200).map(|i| format!("burst {i}")).collect();
    let mut args = vec![];
    for s in &sends {
        args.extend(["--send", s.as_str()]);
    }
    let mut command = example(&cluster, "ann", &[0, 1], &args);
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    let mut acks = 0;
    // Killed once some sends are acked and more are in flight.
    while acks < 20 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the example prints")
            .unwrap()
            .expect("the example is still running");
        acks += usize::from(line.starts_with("ack #"));
        stdout.push_str(&line);
        stdout.push('\n');
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "killed while the example runs"
    );
    cluster.gateways[0].process.kill();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push_str(&line);
            stdout.push('\n');
        }
    })
    .await
    .expect("the example finishes after its gateway died");
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the example failed:\n{stdout}");

    let reconnects = cluster
        .gateway(1)
        .metric("chat_gateway_connects_total", &[("result", "accepted")])
        .await;
    assert!(reconnects >= 1.0, "the example moved to the other gateway");
    let printed = messages(&stdout);
    assert_consecutive(&printed.iter().map(|(s, _)| *s).collect::<Vec<_>>());
    let stored: Vec<String> = cluster
        .stored("py")
        .await
        .into_iter()
        .map(|m| m.3)
        .filter(|b| b.starts_with("burst "))
        .collect();
    assert_eq!(stored, sends, "each send stored once, in the order sent");
    let shown: Vec<&str> = printed
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("ann: "))
        .collect();
    assert_eq!(shown, sends, "each delivered once, in order");
}
