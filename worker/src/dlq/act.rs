//! `replay` and `purge` alike: each selected dead letter is handled in
//! stream order and its outcome reported, then the outcomes are counted.

use std::collections::BTreeMap;

use super::{
    args::Selection, error::DlqError, letter::DeadLetter, outcome::Outcome, purge::purge,
    render::Out, replay::replay, stream::DeadLetters,
};

/// What `act` does with each selected dead letter.
#[derive(Clone, Copy)]
pub(super) enum Action {
    Replay { dry_run: bool },
    Purge { dry_run: bool },
}

/// `replay` and `purge`: each selected dead letter in stream order. True
/// when every one was handled (an undecodable one cannot be replayed, so a
/// replay that skips one is not).
pub(super) async fn act(
    dead: &DeadLetters,
    out: &Out,
    select: &Selection,
    action: Action,
) -> Result<bool, DlqError> {
    let kind = match action {
        Action::Replay { .. } => "replay",
        Action::Purge { .. } => "purge",
    };
    let mut counts = BTreeMap::<&str, u64>::new();
    let mut report = |outcome: Outcome| {
        *counts.entry(outcome.outcome).or_default() += 1;
        out.emit(kind, &outcome, || outcome.text());
    };
    if select.seqs.is_empty() {
        let mut scan = dead.scan(&select.filter);
        while let Some(letter) = scan.next().await? {
            report(handle(dead, &letter, action).await);
        }
    } else {
        for &seq in &select.seqs {
            report(match dead.get(seq).await {
                Ok(letter) => handle(dead, &letter, action).await,
                Err(e) => Outcome::failed(seq, &e),
            });
        }
    }
    let ok = !counts.contains_key("failed") && !counts.contains_key("skipped");
    out.emit("summary", &counts, || {
        let counts: Vec<String> = counts.iter().map(|(o, n)| format!("{o} {n}")).collect();
        let counts = match counts.is_empty() {
            true => "nothing selected".into(),
            false => counts.join(", "),
        };
        let hint = match action {
            Action::Purge { dry_run: true } => " (nothing deleted: add --yes to delete)",
            Action::Replay { dry_run: true } => " (dry run: nothing replayed)",
            _ => "",
        };
        format!("{kind}: {counts}{hint}")
    });
    Ok(ok)
}

async fn handle(dead: &DeadLetters, letter: &DeadLetter, action: Action) -> Outcome {
    match action {
        Action::Replay { dry_run } => replay(dead, letter, dry_run).await,
        Action::Purge { dry_run } => purge(dead, letter, dry_run).await,
    }
}
