//! `show`: one dead letter in full, its headers and what it decodes to,
//! or its bytes when it decodes to nothing.

use std::collections::BTreeMap;

use chat_proto::internal::Envelope;
use serde::Serialize;

use super::{
    error::DlqError,
    letter::{Letter, Summary},
    render::{printable, Out},
    stream::DeadLetters,
};

/// `show`: one dead letter in full.
pub(super) async fn show(dead: &DeadLetters, out: &Out, seq: u64) -> Result<bool, DlqError> {
    let letter = dead.get(seq).await?;
    let headers: BTreeMap<String, String> = letter
        .msg
        .headers
        .iter()
        .map(|(name, values)| {
            let values: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
            (name.to_string(), values.join(", "))
        })
        .collect();
    let detail = Detail {
        summary: letter.summary(),
        headers,
        envelope: match letter.decoded.as_ref().map(|d| &d.letter) {
            Ok(Letter::Send(e)) => Some(e.into()),
            _ => None,
        },
        change: match letter.decoded.as_ref().map(|d| &d.letter) {
            Ok(Letter::Command(c)) => Some(format!("{:?}", c.change)),
            _ => None,
        },
        undecodable: letter.decoded.as_ref().err().map(|e| Undecodable {
            error: e.clone(),
            hex: hex::encode(&letter.msg.payload),
            escaped: letter.msg.payload.escape_ascii().to_string(),
        }),
    };
    out.emit("dead_letter", &detail, || detail.text());
    Ok(true)
}

#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    summary: Summary,
    /// Every header, the three the worker writes included.
    headers: BTreeMap<String, String>,
    envelope: Option<EnvelopeFields>,
    /// A command's change, as the worker would apply it.
    change: Option<String>,
    undecodable: Option<Undecodable>,
}

/// The envelope's fields as sent (room, sender and client_msg_id are in the summary).
#[derive(Serialize)]
struct EnvelopeFields {
    body: String,
    received_ts_ms: i64,
    reply_to: String,
    ticket: u64,
}

impl From<&Envelope> for EnvelopeFields {
    fn from(e: &Envelope) -> Self {
        Self {
            body: e.body.clone(),
            received_ts_ms: e.received_ts_ms,
            reply_to: e.reply_to.clone(),
            ticket: e.ticket,
        }
    }
}

/// A payload that is no envelope, as bytes a person can read.
#[derive(Serialize)]
struct Undecodable {
    error: String,
    hex: String,
    escaped: String,
}

impl Detail {
    fn text(&self) -> String {
        let s = &self.summary;
        let mut lines = vec![
            ("seq", s.seq.to_string()),
            ("time", s.time.clone()),
            ("subject", s.subject.clone()),
        ];
        lines.extend(self.headers.iter().map(|(k, v)| (k.as_str(), printable(v))));
        if let (Some(room), Some(sender), Some(id)) = (&s.room, &s.sender, &s.client_msg_id) {
            let id_name = if self.change.is_some() {
                "command_id"
            } else {
                "client_msg_id"
            };
            lines.extend([
                ("room", printable(room)),
                ("sender", printable(sender)),
                (id_name, printable(id)),
            ]);
        }
        if let Some(e) = &self.envelope {
            lines.extend([
                ("received_ts_ms", e.received_ts_ms.to_string()),
                ("reply_to", printable(&e.reply_to)),
                ("ticket", e.ticket.to_string()),
                ("body", printable(&e.body)),
            ]);
        }
        if let Some(change) = &self.change {
            lines.push(("change", printable(change)));
        }
        if let Some(u) = &self.undecodable {
            lines.extend([
                ("undecodable", printable(&u.error)),
                ("bytes", u.escaped.clone()),
                ("hex", u.hex.clone()),
            ]);
        }
        let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let text: Vec<String> = lines
            .iter()
            .map(|(k, v)| format!("{k:<width$}  {v}"))
            .collect();
        text.join("\n")
    }
}
