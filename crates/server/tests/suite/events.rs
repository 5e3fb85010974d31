//! The event stream (SSE), and several PostgreSQL instances sharing one database.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{put_op, Backend, TestServer};

backend_tests!(
    events_announce_new_revisions_of_the_own_namespace_only,
    a_request_slower_than_the_timeout_is_408_and_the_event_stream_is_not_cut,
    event_streams_are_capped_per_user_and_in_total_and_a_closed_one_frees_its_slot,
    a_commit_wakes_only_the_event_streams_of_its_own_namespace,
);

/// Reads server-sent events.
pub(crate) struct EventReader {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
}

impl EventReader {
    /// Opens `/v1/events` with the token in the query (as `EventSource` does).
    pub(crate) async fn open(server: &TestServer, token: &str) -> Self {
        let url = server.url(&format!("/v1/events?access_token={token}"));
        Self::from_response(server.http.get(url).send().await.unwrap())
    }

    /// Opens `/v1/events` with the token in the `Authorization` header.
    pub(crate) async fn open_with_header(server: &TestServer, token: &str) -> Self {
        let response =
            server.http.get(server.url("/v1/events")).bearer_auth(token).send().await.unwrap();
        Self::from_response(response)
    }

    fn from_response(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self { stream: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event's data, or `None` when the stream ended. A 30 s guard turns a hang into a
    /// failure (it is not a timing assertion).
    pub(crate) async fn next(&mut self) -> Option<Value> {
        self.next_within(Duration::from_secs(30)).await
    }

    /// Like [`EventReader::next`], failing when nothing arrives within `guard`.
    pub(crate) async fn next_within(&mut self, guard: Duration) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|line| line.strip_prefix("data:")) {
                    return Some(serde_json::from_str(data.trim()).unwrap());
                }
                continue;
            }
            let chunk = tokio::time::timeout(guard, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no event within {guard:?}"));
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// The first event a user's stream sends (its current revision).
pub(crate) async fn first_event(server: &TestServer, token: &str) -> Value {
    EventReader::open(server, token).await.next().await.unwrap()
}

async fn events_announce_new_revisions_of_the_own_namespace_only(backend: Backend) {
    let mut server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut events = EventReader::open(&server, &alice.token).await;
    assert_eq!(events.next().await, Some(json!({"revision": 0})));
    server.push(&alice, json!([put_op("1", "c", "a", json!(1), None)])).await;
    assert_eq!(events.next().await, Some(json!({"revision": 1})));
    server
        .push(
            &alice,
            json!([put_op("2", "c", "b", json!(1), None), put_op("3", "c", "d", json!(1), None)]),
        )
        .await;
    assert_eq!(events.next().await, Some(json!({"revision": 3})));
    // Bob's writes are not announced to Alice: her next event is her own revision 4.
    server.push(&bob, json!([put_op("1", "c", "a", json!(1), None)])).await;
    server.put("/api/storage/c:e", &bob, json!({"value": 1})).await;
    server.put("/api/storage/c:e", &alice, json!({"value": 1})).await;
    assert_eq!(events.next().await, Some(json!({"revision": 4})));
    let mut with_header = EventReader::open_with_header(&server, &bob.token).await;
    assert_eq!(with_header.next().await, Some(json!({"revision": 2})));
    // Shutting down ends the streams (so the graceful shutdown can finish).
    server.stop().await;
    assert_eq!(events.next().await, None);
    assert_eq!(with_header.next().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_share_records_tokens_and_events() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let first = TestServer::start(&backend).await;
    let second = TestServer::start(&backend).await;
    let alice = first.user("alice").await;
    // A token made through one instance works on the other (one shared database).
    let mut events = EventReader::open(&second, &alice.token).await;
    assert_eq!(events.next().await, Some(json!({"revision": 0})));
    first.push(&alice, json!([put_op("1", "files", "a", json!("from first"), None)])).await;
    // Instance two hears instance one's commit through LISTEN/NOTIFY.
    assert_eq!(events.next().await, Some(json!({"revision": 1})));
    let records = second.pull_all(&alice, 0, 100).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["value"], "from first");
    // Concurrent writes of one item through both instances: exactly one applies.
    let op_first = json!([put_op("x1", "files", "race", json!(1), None)]);
    let op_second = json!([put_op("x2", "files", "race", json!(2), None)]);
    let (a, b) = tokio::join!(first.push(&alice, op_first), second.push(&alice, op_second));
    let statuses = [a["results"][0]["status"].clone(), b["results"][0]["status"].clone()];
    assert!(
        statuses.contains(&json!("applied")) && statuses.contains(&json!("conflict")),
        "{statuses:?}"
    );
    assert_eq!(events.next().await, Some(json!({"revision": 2})));
}

async fn a_request_slower_than_the_timeout_is_408_and_the_event_stream_is_not_cut(
    backend: Backend,
) {
    let limit = Duration::from_millis(400);
    let server = TestServer::start_with(&backend, |c| c.limits.request_timeout = limit).await;
    let alice = server.user("alice").await;
    let mut events = EventReader::open(&server, &alice.token).await;
    assert_eq!(events.next().await, Some(json!({"revision": 0})));

    // A push whose body trickles in: half now, the rest after three times the limit.
    let body =
        serde_json::to_vec(&json!({"ops": [put_op("slow", "c", "i", json!(1), None)]})).unwrap();
    let (head, tail) = body.split_at(body.len() / 2);
    let chunks = vec![head.to_vec(), tail.to_vec()];
    let trickle = futures_util::stream::iter(chunks.into_iter().enumerate()).then(
        move |(index, chunk)| async move {
            if index > 0 {
                tokio::time::sleep(limit * 3).await;
            }
            Ok::<_, std::io::Error>(chunk)
        },
    );
    let response = server
        .http
        .post(server.url("/v1/push"))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(trickle))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "request_timeout", "{error}");

    // The same push sent at once goes through, and the event stream opened before the slow
    // request (older than the limit by now) is still alive and announces it.
    server.push(&alice, json!([put_op("slow", "c", "i", json!(1), None)])).await;
    assert_eq!(events.next().await, Some(json!({"revision": 1})));
}

/// Opens `/v1/events` and answers the status with the error body (if not 200) or the stream.
async fn try_open(server: &TestServer, token: &str) -> Result<EventReader, (StatusCode, Value)> {
    let url = server.url(&format!("/v1/events?access_token={token}"));
    let response = server.http.get(url).send().await.unwrap();
    if response.status() == StatusCode::OK {
        let mut reader = EventReader::from_response(response);
        // The first event proves the stream is open (and holds its slot).
        assert!(reader.next().await.is_some());
        Ok(reader)
    } else {
        Err((response.status(), response.json().await.unwrap()))
    }
}

async fn event_streams_are_capped_per_user_and_in_total_and_a_closed_one_frees_its_slot(
    backend: Backend,
) {
    let server = TestServer::start_with(&backend, |c| {
        c.limits.max_event_streams_per_user = 3;
        c.limits.max_event_streams = 4;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;

    let mut alice_streams = Vec::new();
    for _ in 0..3 {
        alice_streams.push(try_open(&server, &alice.token).await.map_err(|e| e.1).unwrap());
    }
    // Alice's 4th stream is past the per-user cap.
    let (status, error) = try_open(&server, &alice.token).await.err().expect("4th stream refused");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert!(error["error"].as_str().unwrap().contains("per user"), "{error}");

    // Bob still gets one: the 4th stream of the server.
    let _bob_stream = try_open(&server, &bob.token).await.map_err(|e| e.1).unwrap();
    // Carol has none, but the server's total cap is reached.
    let (status, error) = try_open(&server, &carol.token).await.err().expect("5th stream refused");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert!(error["error"].as_str().unwrap().contains("server"), "{error}");

    // Closing one of Alice's streams frees its slot (once the server notices the disconnect).
    drop(alice_streams.pop());
    let mut reopened = None;
    for _ in 0..600 {
        match try_open(&server, &alice.token).await {
            Ok(stream) => {
                reopened = Some(stream);
                break;
            }
            Err((status, _)) => assert_eq!(status, StatusCode::TOO_MANY_REQUESTS),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "the closed stream's slot was never released");
}

/// `persist_event_stream_wakeups_total{cause="commit"}`: how often event streams were woken by
/// a commit (whether or not it was theirs to announce).
async fn commit_wakeups(server: &TestServer) -> u64 {
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let prefix = "persist_event_stream_wakeups_total{cause=\"commit\"} ";
    let line = text.lines().find_map(|line| line.strip_prefix(prefix));
    line.unwrap_or_else(|| panic!("no commit wake-ups in {text}")).parse().unwrap()
}

async fn a_commit_wakes_only_the_event_streams_of_its_own_namespace(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut bob_events = EventReader::open(&server, &bob.token).await;
    assert_eq!(bob_events.next().await, Some(json!({"revision": 0})));
    let before = commit_wakeups(&server).await;

    for n in 0..20 {
        let id = format!("a{n}");
        server.push(&alice, json!([put_op(&id, "c", &id, json!(n), None)])).await;
    }
    // Bob's own commit is announced after everything published before it has reached his stream.
    server.push(&bob, json!([put_op("b", "c", "b", json!(1), None)])).await;
    assert_eq!(bob_events.next().await, Some(json!({"revision": 1})));

    // His stream woke once, for his commit; Alice's 20 commits did not touch it.
    assert_eq!(commit_wakeups(&server).await - before, 1);
}
