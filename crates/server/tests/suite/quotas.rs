//! Per-user quotas (issue 11): most live records and most bytes of values per user, on every write
//! path, checked inside the write's transaction.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{delete_op, put_op, test_config, Backend, TestServer, User};

backend_tests!(
    a_push_past_the_record_quota_rejects_only_the_ops_past_it,
    a_push_past_the_bytes_quota_rejects_only_the_ops_past_it,
    a_user_at_quota_can_delete_and_overwrite_then_write_again,
    another_user_is_not_limited_by_a_full_user,
    an_import_past_the_quota_is_refused_whole,
    codeforge_writes_past_the_quota_are_refused,
    usage_survives_a_restart,
    concurrent_writes_do_not_overshoot_the_quota,
);

/// Each result of a push as (status, code).
fn statuses(answer: &Value) -> Vec<(String, Value)> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap().to_owned(), r["code"].clone()))
        .collect()
}

fn applied() -> (String, Value) {
    ("applied".to_owned(), Value::Null)
}

fn over_quota() -> (String, Value) {
    ("rejected".to_owned(), json!("quota_exceeded"))
}

/// Pushes `count` new items `prefix-0..` (values `"v"`), expecting 200.
async fn put_new(server: &TestServer, user: &User, prefix: &str, count: usize) -> Value {
    let ops: Vec<_> = (0..count)
        .map(|n| {
            put_op(&format!("{prefix}-op-{n}"), "c", &format!("{prefix}-{n}"), json!("v"), None)
        })
        .collect();
    server.push(user, Value::Array(ops)).await
}

async fn a_push_past_the_record_quota_rejects_only_the_ops_past_it(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| c.limits.max_records_per_user = 3).await;
    let alice = server.user("quota-records").await;
    let answer = put_new(&server, &alice, "a", 5).await;
    let mut expected = vec![applied(); 3];
    expected.extend([over_quota(), over_quota()]);
    assert_eq!(statuses(&answer), expected, "{answer}");
    let message = answer["results"][3]["message"].as_str().unwrap();
    assert!(message.contains("quota"), "{message}");
    assert_eq!(answer["revision"], 3);
    assert_eq!(server.pull_all(&alice, 0, 100).await.len(), 3);
    // A rejected op is not remembered: sent again once there is room, it applies.
    let (status, _) = server.delete("/api/storage/c:a-0", &alice).await;
    assert_eq!(status, StatusCode::OK);
    let again = put_new(&server, &alice, "a", 5).await;
    let statuses = statuses(&again);
    assert_eq!(&statuses[3..], &[applied(), over_quota()], "{again}");
}

async fn a_push_past_the_bytes_quota_rejects_only_the_ops_past_it(backend: Backend) {
    // Values are compact JSON: "xxxx" (4 x's) is 6 bytes.
    let server = TestServer::start_with(&backend, |c| c.limits.max_bytes_per_user = 20).await;
    let alice = server.user("quota-bytes").await;
    let four = json!("xxxx");
    let ops = json!([
        put_op("b1", "c", "one", four.clone(), None),
        put_op("b2", "c", "two", four.clone(), None),
        put_op("b3", "c", "three", four.clone(), None),
        put_op("b4", "c", "four", four.clone(), None),
        put_op("b5", "c", "tiny", json!(1), None),
    ]);
    let answer = server.push(&alice, ops).await;
    // 6 + 6 + 6 = 18 bytes; a fourth 6 would make 24 > 20; `1` (1 byte) still fits.
    assert_eq!(
        statuses(&answer),
        vec![applied(), applied(), applied(), over_quota(), applied()],
        "{answer}"
    );
    // Growing an existing value past the quota is refused too.
    let grow =
        server.push(&alice, json!([put_op("g", "c", "one", json!("xxxxxx"), Some(1))])).await;
    assert_eq!(statuses(&grow), vec![over_quota()], "{grow}");
    let records = server.pull_all(&alice, 0, 100).await;
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r["id"] != "four"));
}

async fn a_user_at_quota_can_delete_and_overwrite_then_write_again(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| {
        c.limits.max_records_per_user = 2;
        c.limits.max_bytes_per_user = 100;
    })
    .await;
    let alice = server.user("quota-full").await;
    let full = put_new(&server, &alice, "f", 2).await;
    assert_eq!(statuses(&full), vec![applied(), applied()]);
    let refused = put_new(&server, &alice, "g", 1).await;
    assert_eq!(statuses(&refused), vec![over_quota()]);
    // At quota: an overwrite that does not add a record passes, and so does a delete.
    let answer = server
        .push(
            &alice,
            json!([
                put_op("over", "c", "f-0", json!("w"), Some(1)),
                delete_op("del", "c", "f-1", Some(2)),
            ]),
        )
        .await;
    assert_eq!(statuses(&answer), vec![applied(), applied()], "{answer}");
    // The delete made room: a new item fits again (a tombstone counts for nothing).
    let again = put_new(&server, &alice, "h", 2).await;
    assert_eq!(statuses(&again), vec![applied(), over_quota()], "{again}");
    // A recreated tombstone counts again.
    let answer = server.push(&alice, json!([put_op("re", "c", "f-1", json!(1), Some(4))])).await;
    assert_eq!(statuses(&answer), vec![over_quota()], "{answer}");
}

async fn another_user_is_not_limited_by_a_full_user(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| c.limits.max_records_per_user = 2).await;
    let alice = server.user("quota-alice").await;
    let bob = server.user("quota-bob").await;
    let answer = put_new(&server, &alice, "a", 3).await;
    assert_eq!(statuses(&answer), vec![applied(), applied(), over_quota()]);
    let answer = put_new(&server, &bob, "b", 2).await;
    assert_eq!(statuses(&answer), vec![applied(), applied()], "{answer}");
}

async fn an_import_past_the_quota_is_refused_whole(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| {
        c.limits.max_records_per_user = 3;
        c.limits.max_bytes_per_user = 1_000;
    })
    .await;
    let alice = server.user("quota-import").await;
    put_new(&server, &alice, "a", 2).await;
    let items = |ids: &[&str], value: Value| -> Value {
        let items: Vec<_> =
            ids.iter().map(|id| json!({"collection": "c", "id": id, "value": value})).collect();
        json!({ "items": items })
    };
    // 2 + 2 new = 4 records > 3: 507, and nothing of it is written.
    let (status, body) =
        server.post("/v1/import", &alice, items(&["a-0", "n1", "n2"], json!(1))).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["code"], "quota_exceeded");
    assert!(body["error"].as_str().unwrap().contains("live records"), "{body}");
    let records = server.pull_all(&alice, 0, 100).await;
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["value"] == "v"), "{records:?}");
    // Bytes: one value of ~1 KB.
    let big = json!("x".repeat(1_000));
    let (status, body) = server.post("/v1/import", &alice, items(&["a-0"], big)).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["code"], "quota_exceeded");
    // Overwrites and one new item fit.
    let (status, body) =
        server.post("/v1/import", &alice, items(&["a-0", "a-1", "n1"], json!(2))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.pull_all(&alice, 0, 100).await.len(), 3);
}

async fn codeforge_writes_past_the_quota_are_refused(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| c.limits.max_records_per_user = 2).await;
    let alice = server.user("quota-codeforge").await;
    for key in ["files:a", "files:b"] {
        let (status, body) =
            server.put(&format!("/api/storage/{key}"), &alice, json!({"value": 1})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = server.put("/api/storage/files:c", &alice, json!({"value": 1})).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::INSUFFICIENT_STORAGE, &json!("quota_exceeded"))
    );
    let (status, body) = server.post("/api/storage/import", &alice, json!({"files:d": 1})).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::INSUFFICIENT_STORAGE, &json!("quota_exceeded"))
    );
    // Overwrite, delete, then a new key fits.
    let (status, _) = server.put("/api/storage/files:a", &alice, json!({"value": 2})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.delete("/api/storage/files:b", &alice).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.put("/api/storage/files:c", &alice, json!({"value": 1})).await;
    assert_eq!(status, StatusCode::OK);
    // Clear frees everything.
    let (status, _) = server.post("/api/storage/clear", &alice, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        server.post("/api/storage/import", &alice, json!({"files:x": 1, "files:y": 2})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn usage_survives_a_restart(backend: Backend) {
    let mut server = TestServer::start_with(&backend, |c| c.limits.max_records_per_user = 3).await;
    let alice = server.user("quota-restart").await;
    let answer = put_new(&server, &alice, "a", 2).await;
    assert_eq!(statuses(&answer), vec![applied(), applied()]);
    server.stop().await;
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let mut config = test_config(server.database.clone());
    config.limits.max_records_per_user = 3;
    let reopened = TestServer::start_config(config, dir).await;
    let answer = put_new(&reopened, &alice, "b", 2).await;
    assert_eq!(statuses(&answer), vec![applied(), over_quota()], "{answer}");
}

async fn concurrent_writes_do_not_overshoot_the_quota(backend: Backend) {
    const QUOTA: u64 = 37;
    let server = std::sync::Arc::new(
        TestServer::start_with(&backend, |c| c.limits.max_records_per_user = QUOTA).await,
    );
    let alice = server.user("quota-race").await;
    let pushes: Vec<_> = (0..20)
        .map(|n| {
            let (server, alice) = (server.clone(), alice.clone());
            tokio::spawn(async move { put_new(&server, &alice, &format!("p{n}"), 5).await })
        })
        .collect();
    let mut applied_ops = 0;
    for push in pushes {
        let answer = push.await.unwrap();
        applied_ops += statuses(&answer).iter().filter(|s| **s == applied()).count() as u64;
    }
    assert_eq!(applied_ops, QUOTA);
    assert_eq!(server.pull_all(&alice, 0, 500).await.len() as u64, QUOTA);
}
