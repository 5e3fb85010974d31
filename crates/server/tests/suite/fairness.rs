//! Writer fairness (issue 11): on SQLite one user's large import or clear is written in slices,
//! one per group commit, so other users' writes are served between them instead of waiting for
//! the whole import. The quota still refuses an import whole, and the usage counters stay exact.
//!
//! The imports here are larger than one slice can hold (16,384 rows at most), so they take several
//! writer turns whatever the build's speed.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{put_op, Backend, TestServer, User};

backend_tests!(
    a_sliced_import_past_the_quota_writes_nothing,
    usage_counters_after_a_sliced_import_equal_a_recount,
    a_sliced_clear_tombstones_everything_and_zeroes_the_usage,
);

/// More rows than one slice writes.
const SLICED: usize = 20_000;

/// An import body of items `c:i-<n>` for `n` in `range`, each with the value `value(n)`.
fn import_body(range: std::ops::Range<usize>, value: impl Fn(usize) -> Value) -> Value {
    let items: Vec<_> = range
        .map(|n| json!({"collection": "c", "id": format!("i-{n}"), "value": value(n)}))
        .collect();
    json!({ "items": items })
}

/// `/v1/stats` of `user`: the live records and bytes counted from the records themselves.
async fn recount(server: &TestServer, user: &User) -> (u64, u64, Value) {
    let (status, stats) = server.get("/v1/stats", user).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let keys = stats["total_keys"].as_u64().unwrap();
    (keys, stats["total_size_bytes"].as_u64().unwrap(), stats)
}

/// Before writer slicing, a 150,000-item import held the one SQLite writer for its whole
/// duration: every other user's push was answered only after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_push_is_answered_while_a_large_import_is_still_being_written() {
    const ITEMS: usize = 150_000;
    let server = TestServer::start_with(&Backend::Sqlite, |c| {
        c.limits.max_records_per_user = ITEMS as u64;
    })
    .await;
    let (alice_ns, alice) = server.named_user("fair-importer").await;
    let bob = server.user("fair-pusher").await;
    let body = import_body(0..ITEMS, |n| json!(n));
    let answered = Mutex::new(Vec::new());

    let import = async {
        let answer = server.post("/v1/import", &alice, body).await;
        answered.lock().unwrap().push("import");
        answer
    };
    let others = async {
        // The import has started once its first slice is committed (readable).
        loop {
            let (status, page) = server.get("/v1/pull?since=0&limit=1", &alice).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            if !page["records"].as_array().unwrap().is_empty() {
                break;
            }
            let done = answered.lock().unwrap().contains(&"import");
            assert!(!done, "no slice of the import was readable before its answer");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let bob_push = async {
            let answer =
                server.push(&bob, json!([put_op("b1", "notes", "n1", json!("hi"), None)])).await;
            answered.lock().unwrap().push("push");
            answer
        };
        // Alice's own write to a key of her import's last slice: it waits for the import to end,
        // so it is applied last and wins.
        let alice_put = async {
            let path = format!("/api/storage/c:i-{}", ITEMS - 1);
            server.put(&path, &alice, json!({"value": "mine"})).await
        };
        tokio::join!(bob_push, alice_put)
    };
    let ((status, imported), (pushed, (put_status, put_body))) = tokio::join!(import, others);

    assert_eq!(*answered.lock().unwrap(), ["push", "import"], "bob waited for alice's import");
    assert_eq!(status, StatusCode::OK, "{imported}");
    assert_eq!(imported["imported"], ITEMS as u64);
    assert_eq!(pushed["results"][0]["status"], "applied", "{pushed}");
    assert_eq!(put_status, StatusCode::OK, "{put_body}");
    let (keys, bytes, stats) = recount(&server, &alice).await;
    assert_eq!(keys, ITEMS as u64, "{stats}");
    // Every item written, then the PUT.
    assert_eq!(stats["revision"], ITEMS as u64 + 1, "{stats}");
    assert_eq!(server.stored_usage(&alice_ns).await, (keys, bytes));
    let (_, value) = server.get(&format!("/api/storage/c:i-{}", ITEMS - 1), &alice).await;
    assert_eq!(value["value"], "mine");
    let (_, value) = server.get("/api/storage/c:i-0", &alice).await;
    assert_eq!(value["value"], 0);
    let bob_records = server.pull_all(&bob, 0, 100).await;
    assert_eq!(bob_records.len(), 1);
    assert_eq!(bob_records[0]["value"], "hi");
}

async fn a_sliced_import_past_the_quota_writes_nothing(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| {
        c.limits.max_records_per_user = SLICED as u64;
    })
    .await;
    let (name, alice) = server.named_user("fair-quota").await;
    server.push(&alice, json!([put_op("seed", "c", "seed", json!("v"), None)])).await;
    // 1 + 20,000 new records > 20,000: refused once all of it is measured, before any slice.
    let (status, body) =
        server.post("/v1/import", &alice, import_body(0..SLICED, |n| json!(n))).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["code"], "quota_exceeded");
    let records = server.pull_all(&alice, 0, 5_000).await;
    assert_eq!(records.len(), 1, "the refused import wrote something");
    let (keys, bytes, stats) = recount(&server, &alice).await;
    assert_eq!((keys, &stats["revision"]), (1, &json!(1)), "{stats}");
    assert_eq!(server.stored_usage(&name).await, (keys, bytes));
    // One fewer fits exactly.
    let (status, body) =
        server.post("/v1/import", &alice, import_body(0..SLICED - 1, |n| json!(n))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(recount(&server, &alice).await.0, SLICED as u64);
}

async fn usage_counters_after_a_sliced_import_equal_a_recount(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let (name, alice) = server.named_user("fair-usage").await;
    // Items the import overwrites (a live one grows, another shrinks) or recreates (a tombstone).
    let seed = json!([
        put_op("s1", "c", "i-1", json!("a"), None),
        put_op("s2", "c", "i-2", json!("a much longer value than the import's"), None),
        put_op("s3", "c", "i-3", json!("gone"), None),
        put_op("s4", "c", "kept", json!({"k": [1, 2, 3]}), None),
    ]);
    server.push(&alice, seed).await;
    let (status, _) = server.delete("/api/storage/c:i-3", &alice).await;
    assert_eq!(status, StatusCode::OK);

    // Values of varying sizes, so that bytes are counted row by row.
    let value = |n: usize| json!("x".repeat(n % 97));
    let (status, body) = server.post("/v1/import", &alice, import_body(0..SLICED, value)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (keys, bytes, stats) = recount(&server, &alice).await;
    assert_eq!(keys, SLICED as u64 + 1, "{stats}");
    let expected_bytes: u64 = (0..SLICED).map(|n| (n % 97) as u64 + 2).sum::<u64>() + 13;
    assert_eq!(bytes, expected_bytes, "{stats}");
    assert_eq!(server.stored_usage(&name).await, (keys, bytes));
}

async fn a_sliced_clear_tombstones_everything_and_zeroes_the_usage(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let (name, alice) = server.named_user("fair-clear").await;
    let (status, body) =
        server.post("/v1/import", &alice, import_body(0..SLICED, |n| json!(n))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server.delete("/api/storage/c:i-7", &alice).await;
    assert_eq!(status, StatusCode::OK);
    let head = (SLICED + 1) as u64;

    let (status, body) = server.post("/api/storage/clear", &alice, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (keys, bytes, stats) = recount(&server, &alice).await;
    assert_eq!((keys, bytes), (0, 0), "{stats}");
    // One tombstone per item that was live.
    assert_eq!(stats["revision"], head + SLICED as u64 - 1, "{stats}");
    assert_eq!(server.stored_usage(&name).await, (0, 0));
    let records = server.pull_all(&alice, 0, 5_000).await;
    assert_eq!(records.len(), SLICED);
    assert!(records.iter().all(|r| r["deleted"] == true), "a live record survived the clear");
    // The namespace is writable again, from zero.
    let (status, body) = server.post("/api/storage/import", &alice, json!({"c:x": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.stored_usage(&name).await, (1, 1));
}
