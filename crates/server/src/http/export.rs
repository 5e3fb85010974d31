//! Exports written as they are read: `GET /v1/export` (`{"revision":…,"records":[…]}`) and
//! CodeForge's `GET /api/storage/export` (`{"<collection>:<id>": value, …}`).
//!
//! The storage reads one snapshot in batches of about a MiB and waits while a batch is being
//! sent ([`ExportStream`]), so an export of any size holds a couple of batches at a time, and a
//! client that stops reading stops the reader. The JSON around the records is written here, by
//! hand, because the records arrive a batch at a time: a serializer would need them all at once.
//! Exports run under caps per user and per instance ([`Slots`]), as each holds a database
//! connection for as long as its client takes to read it.

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::{stream, StreamExt};
use persist_protocol::flat_key;

use super::limits::Slot;
use crate::storage::{ExportStream, StoredRecord};

/// How the records of an export are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExportFormat {
    /// The sync protocol's `ExportResponse`: `{"revision":R,"records":[record, …]}`.
    Records,
    /// CodeForge's flat object of `"<collection>:<id>"` keys to values.
    CodeForge,
}

impl ExportFormat {
    fn opening(self, revision: u64) -> String {
        match self {
            ExportFormat::Records => format!(r#"{{"revision":{revision},"records":["#),
            ExportFormat::CodeForge => "{".to_owned(),
        }
    }

    fn closing(self) -> &'static str {
        match self {
            ExportFormat::Records => "]}",
            ExportFormat::CodeForge => "}",
        }
    }

    /// Appends one record (after a comma unless it is the first).
    fn write(
        self,
        out: &mut Vec<u8>,
        record: &StoredRecord,
        first: bool,
    ) -> serde_json::Result<()> {
        if !first {
            out.push(b',');
        }
        match self {
            ExportFormat::Records => serde_json::to_writer(&mut *out, record),
            ExportFormat::CodeForge => {
                serde_json::to_writer(&mut *out, &flat_key(&record.collection, &record.id))?;
                out.push(b':');
                let value = record.value.as_ref().map_or("null", |value| value.get());
                out.extend_from_slice(value.as_bytes());
                Ok(())
            }
        }
    }
}

/// What the body stream carries between chunks.
struct Writing {
    format: ExportFormat,
    export: ExportStream,
    /// Nothing written yet but the opening.
    first: bool,
    done: bool,
    /// Held until the answer is written or dropped.
    _slot: Slot,
}

/// The `200` answer streaming `export` in `format`, holding `slot` until it ends.
pub(super) fn response(format: ExportFormat, export: ExportStream, slot: Slot) -> Response {
    let opening = Bytes::from(format.opening(export.revision));
    let state = Writing { format, export, first: true, done: false, _slot: slot };
    let records = stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        match state.export.batches.recv().await {
            Some(Ok(batch)) => {
                let mut out = Vec::with_capacity(batch.iter().map(|r| r.cost() as usize).sum());
                for record in &batch {
                    if let Err(error) = state.format.write(&mut out, record, state.first) {
                        state.done = true;
                        return Some((Err(broken(&error.to_string())), state));
                    }
                    state.first = false;
                }
                Some((Ok(Bytes::from(out)), state))
            }
            Some(Err(error)) => {
                state.done = true;
                Some((Err(broken(&error)), state))
            }
            None => {
                state.done = true;
                Some((Ok(Bytes::from_static(state.format.closing().as_bytes())), state))
            }
        }
    });
    let body = stream::once(async move { Ok(opening) }).chain(records);
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response()
}

/// An error after the first byte cannot become an error status any more: the connection is cut,
/// so the client sees a truncated (invalid) answer rather than a short one that parses.
fn broken(error: &dyn std::fmt::Display) -> std::io::Error {
    tracing::error!(%error, "export failed while being sent");
    std::io::Error::other(format!("export failed: {error}"))
}
