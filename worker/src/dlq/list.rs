//! `list`: the matching dead letters as a table (or JSON lines), then a
//! count by reason.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    args::Filter,
    error::DlqError,
    letter::Summary,
    render::{printable, truncate, Out},
    stream::DeadLetters,
};

/// Longest detail in `list`'s text output; `show` and `--json` give it whole.
const LIST_DETAIL_CHARS: usize = 60;

/// `list`: the matching dead letters, oldest first, then a count by reason.
pub(super) async fn list(
    dead: &DeadLetters,
    out: &Out,
    filter: &Filter,
    limit: Option<usize>,
) -> Result<bool, DlqError> {
    let (mut rows, mut by_reason) = (Vec::new(), BTreeMap::<String, u64>::new());
    let mut scan = dead.scan(filter);
    while let Some(letter) = scan.next().await? {
        *by_reason.entry(letter.reason().to_owned()).or_default() += 1;
        if limit.is_none_or(|n| rows.len() < n) {
            rows.push(letter.summary());
        }
    }
    if out.json {
        for row in &rows {
            out.emit("dead_letter", row, String::new);
        }
    } else {
        print!("{}", table(&rows));
    }
    let total: u64 = by_reason.values().sum();
    let counts =
        serde_json::json!({ "total": total, "listed": rows.len(), "by_reason": by_reason });
    out.emit("summary", &counts, || {
        let reasons: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
        format!(
            "{total} dead letters ({} listed): {}",
            rows.len(),
            reasons.join(", ")
        )
    });
    Ok(true)
}

/// The rows as aligned columns, the detail cut short.
fn table(rows: &[Summary]) -> String {
    let header = [
        "SEQ",
        "TIME",
        "ROOM",
        "SENDER",
        "CLIENT_MSG_ID",
        "REASON",
        "ATTEMPTS",
        "DETAIL",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let or_dash = |s: &Option<String>| s.as_deref().map_or("-".into(), printable);
            [
                r.seq.to_string(),
                r.time.clone(),
                or_dash(&r.room),
                or_dash(&r.sender),
                or_dash(&r.client_msg_id),
                printable(&r.reason),
                r.attempts.map_or("-".into(), |n| n.to_string()),
                truncate(&r.detail, LIST_DETAIL_CHARS),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(header.map(String::from)).chain(cells) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
