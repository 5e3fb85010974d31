//! The attacker's tools: HTTP clients whose every request is bounded, answers read without
//! keeping them, uploads over raw TCP, and large valid bodies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every attack request gives up after this, so a server that stalls cannot hang the suite.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP client for the attacker.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().unwrap()
}

/// An answer read to its end: status (0 when the request failed), its size, and its body when
/// it is at most `keep` bytes (a pre-hardening server answered hundreds of MB; they are counted,
/// not kept).
#[derive(Debug)]
pub(crate) struct Drained {
    pub(crate) status: u16,
    pub(crate) bytes: u64,
    pub(crate) body: Option<Vec<u8>>,
}

impl Drained {
    /// The body as JSON, when it was kept and is JSON.
    pub(crate) fn json(&self) -> Option<Value> {
        serde_json::from_slice(self.body.as_deref()?).ok()
    }
}

/// Sends `request` and reads its answer to the end.
pub(crate) async fn drain(request: reqwest::RequestBuilder, keep: usize) -> Drained {
    let Ok(response) = request.send().await else {
        return Drained { status: 0, bytes: 0, body: None };
    };
    let status = response.status().as_u16();
    let mut stream = response.bytes_stream();
    let (mut bytes, mut body) = (0u64, Some(Vec::new()));
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            // Cut mid-answer (the server died or gave up): not a complete answer.
            return Drained { status: 0, bytes, body: None };
        };
        bytes += chunk.len() as u64;
        match &mut body {
            Some(kept) if kept.len() + chunk.len() <= keep => kept.extend_from_slice(&chunk),
            _ => body = None,
        }
    }
    Drained { status, bytes, body }
}

/// A count of answers per status (`"0"` for failed requests), for the report.
pub(crate) fn status_counts(statuses: impl IntoIterator<Item = u16>) -> Value {
    let mut counts = serde_json::Map::new();
    for status in statuses {
        let count = counts.entry(status.to_string()).or_insert(json!(0));
        *count = json!(count.as_u64().unwrap() + 1);
    }
    Value::Object(counts)
}

/// A JSON string value of `bytes` bytes (compact JSON, quotes included).
pub(crate) fn padding(bytes: usize) -> Value {
    Value::String("x".repeat(bytes - 2))
}

/// A `/v1/import` body of `items` items of `value_bytes` each, ids `<prefix><n>`.
pub(crate) fn import_body(prefix: &str, items: usize, value_bytes: usize) -> Vec<u8> {
    let value = padding(value_bytes);
    let items: Vec<_> = (0..items)
        .map(|n| json!({"collection": "bulk", "id": format!("{prefix}{n}"), "value": value}))
        .collect();
    serde_json::to_vec(&json!({ "items": items })).unwrap()
}

/// What a raw upload saw.
#[derive(Debug)]
pub(crate) struct Upload {
    /// The answer's status, 0 when the connection ended without one.
    pub(crate) status: u16,
    /// Body bytes the client had sent when the answer (or the end) came.
    pub(crate) sent_before_answer: u64,
}

/// Posts a `length`-byte body to `path` over its own connection, streaming it in 64 KiB chunks
/// (never all in memory) and stopping as soon as the server answers or closes.
pub(crate) async fn upload(address: &str, path: &str, headers: &str, length: u64) -> Upload {
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Content-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    let answered = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (answered, sent) = (Arc::clone(&answered), Arc::clone(&sent));
        tokio::spawn(async move {
            if write.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = length;
            while left > 0 && !answered.load(Ordering::Relaxed) {
                let n = left.min(chunk.len() as u64);
                if write.write_all(&chunk[..n as usize]).await.is_err() {
                    return;
                }
                sent.fetch_add(n, Ordering::Relaxed);
                left -= n;
            }
        })
    };
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let status_line = async {
        while !received.windows(2).any(|w| w == b"\r\n") {
            match read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, status_line).await;
    let sent_before_answer = sent.load(Ordering::Relaxed);
    answered.store(true, Ordering::Relaxed);
    writer.abort();
    let text = String::from_utf8_lossy(&received);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Upload { status, sent_before_answer }
}

/// Connects and sends `bytes` (the start of a request), then nothing more.
pub(crate) async fn half_sent(address: &str, bytes: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    stream
}

/// `true` when the server has closed `stream` (end of stream or reset) within `limit`.
pub(crate) async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.is_ok()
}

/// A random-looking token of the real format (`pst_` and 64 hex digits) that no user has.
pub(crate) fn random_token(seed: u64) -> String {
    // splitmix64: distinct, well-mixed tokens without a dependency.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    format!("pst_{:016x}{:016x}{:016x}{:016x}", next(), next(), next(), next())
}
