//! LISTEN/NOTIFY: every instance hears the revisions committed by every other instance.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::storage::EventHub;

/// The channel every write notifies, payload `"<revision>:<namespace>"`.
pub(super) const CHANNEL: &str = "persist_events";

/// Keeps one connection listening, reconnecting with backoff; runs until aborted.
pub(super) async fn listen_forever(config: tokio_postgres::Config, events: EventHub) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(note)) => {
                                if notes_tx.send(note.payload().to_owned()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "postgres listener connection failed");
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(200);
                        // Anything committed while we were not listening is found by a re-read.
                        events.resync();
                        while let Some(payload) = notes.recv().await {
                            if let Some((revision, ns)) = parse_payload(&payload) {
                                events.advanced(ns, revision);
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "LISTEN failed"),
                }
                driver.abort();
            }
            Err(error) => tracing::warn!(%error, "postgres listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

pub(super) fn payload(ns: &str, revision: u64) -> String {
    format!("{revision}:{ns}")
}

fn parse_payload(payload: &str) -> Option<(u64, &str)> {
    let (revision, ns) = payload.split_once(':')?;
    Some((revision.parse().ok()?, ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_with_colons_in_the_namespace() {
        assert_eq!(parse_payload(&payload("a:b", 42)), Some((42, "a:b")));
        assert_eq!(parse_payload("x"), None);
    }
}
