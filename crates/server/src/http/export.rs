//! Exports written as they are read: `GET /v1/export` (`{"revision":…,"records":[…]}`) and
//! CodeForge's `GET /api/storage/export` (`{"<collection>:<id>": value, …}`).
//!
//! The storage reads one snapshot in batches of about a MiB and waits while a batch is being
//! sent ([`ExportStream`]), so an export of any size holds a few batches at a time, and a client
//! that stops reading stops the reader. An export must be read within the bulk routes' timeout
//! (ten times `--request-timeout-secs`): then the reader stops and the answer is cut. The JSON around the records is written here, by
//! hand, because the records arrive a batch at a time: a serializer would need them all at once.
//! Exports run under caps per user and per instance ([`Slots`]), as each holds a database
//! connection for as long as its client takes to read it.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use persist_protocol::flat_key;
use tokio::sync::mpsc;

use super::limits::Slot;
use crate::storage::{ExportChunk, ExportStream, StoredRecord};

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

/// What the forwarding task hands the body.
enum Piece {
    /// More of the answer.
    More(Bytes),
    /// The end of the answer: after this the export is complete.
    Last(Bytes),
}

/// The `200` answer streaming `export` in `format`.
///
/// A task of its own moves batches from the storage's reader to the body, holding `slot`; it
/// gives up at `deadline` (the bulk routes' timeout), which stops the reader and frees its
/// database connection and the slot, however slowly the client reads. An answer that ends any
/// other way than complete is cut (the connection is closed mid-body), never ended as if it were
/// whole.
pub(super) fn response(
    format: ExportFormat,
    export: ExportStream,
    slot: Slot,
    deadline: Option<Duration>,
) -> Response {
    let (pieces, received) = mpsc::channel(1);
    tokio::spawn(forward(format, export, slot, deadline, pieces));
    let body = stream::unfold((received, false), |(mut received, complete)| async move {
        if complete {
            return None;
        }
        match received.recv().await {
            Some(Piece::More(bytes)) => Some((Ok(bytes), (received, false))),
            Some(Piece::Last(bytes)) => Some((Ok(bytes), (received, true))),
            None => Some((Err(std::io::Error::other("export stopped")), (received, true))),
        }
    });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response()
}

async fn forward(
    format: ExportFormat,
    mut export: ExportStream,
    _slot: Slot,
    deadline: Option<Duration>,
    pieces: mpsc::Sender<Piece>,
) {
    let work = async {
        let opening = Bytes::from(format.opening(export.revision));
        if pieces.send(Piece::More(opening)).await.is_err() {
            return;
        }
        let mut first = true;
        loop {
            let piece = match export.batches.recv().await {
                Some(Ok(ExportChunk::Records(batch))) => {
                    // About a MiB of copying: off the async workers.
                    let leading = first;
                    let encoded = tokio::task::spawn_blocking(move || {
                        let mut out =
                            Vec::with_capacity(batch.iter().map(|r| r.cost() as usize).sum());
                        for (n, record) in batch.iter().enumerate() {
                            format.write(&mut out, record, leading && n == 0)?;
                        }
                        Ok::<_, serde_json::Error>(out)
                    })
                    .await;
                    match encoded {
                        Ok(Ok(out)) => {
                            first &= out.is_empty();
                            Piece::More(Bytes::from(out))
                        }
                        Ok(Err(error)) => {
                            tracing::error!(%error, "export failed while being written");
                            return;
                        }
                        Err(error) => {
                            tracing::error!(%error, "export task failed");
                            return;
                        }
                    }
                }
                Some(Ok(ExportChunk::End)) => {
                    Piece::Last(Bytes::from_static(format.closing().as_bytes()))
                }
                Some(Err(error)) => {
                    tracing::error!(%error, "export failed while being read");
                    return;
                }
                None => {
                    tracing::error!("the export's reader stopped early");
                    return;
                }
            };
            let last = matches!(piece, Piece::Last(_));
            if pieces.send(piece).await.is_err() || last {
                return; // the client went away, or the export is complete
            }
        }
    };
    match deadline {
        Some(limit) => {
            if tokio::time::timeout(limit, work).await.is_err() {
                tracing::warn!(?limit, "export not read within the bulk routes' timeout: cut");
            }
        }
        None => work.await,
    }
}
