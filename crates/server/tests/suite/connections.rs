//! Connections from hostile clients (issue 11 item 2): half-sent requests are cut after the
//! header-read timeout, silent connections after the idle timeout, connections past the cap wait
//! for a free slot, and a shutdown ends within its deadline whoever is still connected.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Backend, TestServer};

backend_tests!(shutdown_ends_within_its_timeout_despite_half_sent_requests_and_event_streams);

/// `host:port` of a test server.
fn address(server: &TestServer) -> &str {
    server.base.strip_prefix("http://").unwrap()
}

/// Connects and sends `bytes` (the start of a request), then sends nothing more.
async fn half_sent(server: &TestServer, bytes: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address(server)).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    stream
}

/// Reads until the server closes the connection (end of stream or reset) and answers what was
/// received, or `None` when it is still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let read = async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()
}

/// `GET /health` over its own connection; answers the status and how long it took.
async fn health(server: &TestServer) -> (u16, Duration) {
    let started = Instant::now();
    let response = server.http.get(server.url("/health")).send().await.unwrap();
    let status = response.status().as_u16();
    response.bytes().await.unwrap();
    (status, started.elapsed())
}

/// One client address could take every connection slot; past its own cap a new connection is
/// closed at once, while other connections keep being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_per_address_cap_are_closed_at_once_and_a_freed_place_is_reused() {
    let server = TestServer::start_with(&Backend::Sqlite, |c| {
        c.limits.max_connections_per_address = 3;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(half_sent(&server, "GET /health HTTP/1.1\r\n").await);
    }
    let mut refused = TcpStream::connect(address(&server)).await.unwrap();
    let answer = read_until_closed(&mut refused, Duration::from_secs(5)).await;
    assert_eq!(answer.as_deref(), Some(""), "the fourth connection was not closed at once");

    // A place is freed when its connection ends.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream =
            half_sent(&server, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
        let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await.unwrap();
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place was never reused: {answer:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 300 clients that send half a request line and then nothing used to hold their connections
/// forever (with a 256 file descriptor limit, `/health` then timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_request_lines_are_cut_after_the_header_timeout_and_health_keeps_answering() {
    const CLIENTS: usize = 300;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    let server = TestServer::start_with(&Backend::Sqlite, |c| {
        c.limits.header_read_timeout = HEADER_TIMEOUT;
        c.limits.max_connections = 1024;
    })
    .await;
    let opened = Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(half_sent(&server, "GET /hea").await);
    }
    // While they are all connected, /health answers at once.
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let (status, took) = health(&server).await;
        assert_eq!(status, 200);
        slowest = slowest.max(took);
    }
    eprintln!("/health with {CLIENTS} half-sent requests open: slowest of 5 took {slowest:?}");
    assert!(slowest < Duration::from_millis(500), "/health took {slowest:?}");
    assert!(opened.elapsed() < HEADER_TIMEOUT, "too slow to test: {:?}", opened.elapsed());

    // Each is closed after the header timeout (plus a margin for a loaded machine).
    let deadline = opened + HEADER_TIMEOUT + Duration::from_secs(3);
    for (n, client) in clients.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let closed = read_until_closed(client, left).await;
        assert!(closed.is_some(), "client {n} still connected after {:?}", opened.elapsed());
    }
    let (status, _) = health(&server).await;
    assert_eq!(status, 200);
}

/// Past `max_connections`, a connection waits (in the kernel's backlog) instead of being served,
/// and is served as soon as a slot frees: here when the header timeout cuts the slowloris
/// clients that hold every slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_slot_and_are_then_served() {
    const CAP: usize = 8;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
    let server = TestServer::start_with(&Backend::Sqlite, |c| {
        c.limits.header_read_timeout = HEADER_TIMEOUT;
        c.limits.max_connections = CAP;
    })
    .await;
    let opened = Instant::now();
    let mut slowloris = Vec::new();
    for _ in 0..CAP {
        slowloris.push(half_sent(&server, "GET /hea").await);
    }
    let request =
        format!("GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", address(&server));
    let mut waiting = half_sent(&server, &request).await;
    // Every slot is taken: no answer while the slowloris clients hold them.
    let early = read_until_closed(&mut waiting, Duration::from_secs(1)).await;
    assert_eq!(early, None, "answered past the cap of {CAP} connections");
    // The header timeout frees the slots; the waiting request is then answered.
    let answer = read_until_closed(&mut waiting, HEADER_TIMEOUT + Duration::from_secs(4)).await;
    let answer = answer.expect("no answer once the slots were freed");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        opened.elapsed() >= HEADER_TIMEOUT - Duration::from_millis(500),
        "{:?}",
        opened.elapsed()
    );
    for (n, client) in slowloris.iter_mut().enumerate() {
        assert!(read_until_closed(client, Duration::from_secs(2)).await.is_some(), "client {n}");
    }
    // A closed connection frees its slot at once, too.
    let mut full = Vec::new();
    for _ in 0..CAP {
        full.push(half_sent(&server, "GET /hea").await);
    }
    let mut waiting = half_sent(&server, &request).await;
    assert_eq!(read_until_closed(&mut waiting, Duration::from_millis(500)).await, None);
    drop(full.pop());
    let answer = read_until_closed(&mut waiting, Duration::from_secs(2)).await;
    assert!(answer.is_some_and(|a| a.starts_with("HTTP/1.1 200 ")), "not answered after a close");
}

/// An authenticated upload that stalls mid-body is not cut by the (long) request timeout of the
/// bulk routes, but by the idle timeout: no byte moved for that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_closed_after_the_idle_timeout() {
    const IDLE: Duration = Duration::from_secs(1);
    let server = TestServer::start_with(&Backend::Sqlite, |c| {
        c.limits.request_timeout = Duration::from_secs(120);
        c.limits.idle_timeout = IDLE;
    })
    .await;
    let alice = server.user("stalled").await;
    let head = format!(
        "POST /v1/import HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"items\": [",
        address(&server),
        alice.token
    );
    let started = Instant::now();
    let mut stalled = half_sent(&server, &head).await;
    let closed = read_until_closed(&mut stalled, IDLE + Duration::from_secs(4)).await;
    assert!(closed.is_some(), "still open after {:?}", started.elapsed());
    assert!(started.elapsed() >= IDLE - Duration::from_millis(100), "{:?}", started.elapsed());
    let (status, _) = health(&server).await;
    assert_eq!(status, 200);
}

/// A shutdown used to wait forever for a client that had sent half a request. Now in-flight
/// requests get the shutdown timeout, then the server drops what is left; event streams end.
async fn shutdown_ends_within_its_timeout_despite_half_sent_requests_and_event_streams(
    backend: Backend,
) {
    const SHUTDOWN: Duration = Duration::from_secs(2);
    let mut server = TestServer::start_with(&backend, |c| {
        c.limits.shutdown_timeout = SHUTDOWN;
        c.limits.header_read_timeout = Duration::from_secs(120);
        c.limits.idle_timeout = Duration::from_secs(120);
    })
    .await;
    let alice = server.user("shutdown").await;
    let events = server.http.get(server.url("/v1/events")).bearer_auth(&alice.token);
    let response = events.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream();
    let first = events.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data:"), "{first:?}");
    let _half_head = half_sent(&server, "POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Le").await;
    let head = format!(
        "POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"ops\": [",
        alice.token
    );
    let _half_body = half_sent(&server, &head).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let running = server.server.take().unwrap();
    let stopped = tokio::time::timeout(SHUTDOWN + Duration::from_secs(5), running.shutdown()).await;
    let took = started.elapsed();
    assert!(stopped.is_ok(), "the shutdown did not end within {took:?}");
    stopped.unwrap().unwrap();
    eprintln!("shutdown with a half-sent request and an event stream open took {took:?}");
    // The event stream has ended.
    let rest = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = events.next().await {}
    })
    .await;
    assert!(rest.is_ok(), "the event stream is still open after the shutdown");
}
