//! Pulls, exports and imports stay bounded in memory (issue 11, item 4): pull pages stop at a
//! byte budget, exports are streamed from one snapshot, and exports and imports run under caps
//! per user taken before any body is read.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{Backend, TestServer, User};

backend_tests!(
    a_pull_page_stops_at_its_byte_budget_and_every_record_is_still_reached,
    an_export_streams_every_live_record_in_key_order_across_batches,
    an_export_past_the_per_user_cap_is_refused_while_one_is_being_read,
    an_export_not_read_within_the_bulk_timeout_is_cut_and_frees_its_place,
    a_second_import_of_one_user_is_refused_before_its_body_is_read,
);

/// Imports `count` items `c/NNN` whose values are strings of `bytes` characters (plus a marker).
async fn import_items(server: &TestServer, user: &User, count: usize, bytes: usize) {
    let items: Vec<Value> = (0..count)
        .map(|i| json!({ "collection": "c", "id": format!("{i:03}"), "value": value_of(i, bytes) }))
        .collect();
    let (status, body) = server.post("/v1/import", user, json!({ "items": items })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn value_of(i: usize, bytes: usize) -> Value {
    json!({ "n": i, "text": "x".repeat(bytes) })
}

async fn a_pull_page_stops_at_its_byte_budget_and_every_record_is_still_reached(backend: Backend) {
    let server = TestServer::start_with(&backend, |config| {
        config.limits.max_page_bytes = 64 * 1024;
    })
    .await;
    let user = server.user("paged").await;
    import_items(&server, &user, 10, 20_000).await;

    // 20 KB values: three fit in 64 KiB, the fourth does not.
    let (status, page) = server.get("/v1/pull?since=0&limit=500", &user).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["records"].as_array().unwrap().len(), 3, "a page past its byte budget");
    assert_eq!(page["has_more"], true);

    let records = server.pull_all(&user, 0, 500).await;
    assert_eq!(records.len(), 10);
    let revisions: Vec<u64> = records.iter().map(|r| r["revision"].as_u64().unwrap()).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    for record in &records {
        let n = record["value"]["n"].as_u64().unwrap() as usize;
        assert_eq!(record["value"], value_of(n, 20_000));
    }

    // A value larger than the whole budget still comes, alone.
    let head = revisions[revisions.len() - 1];
    import_items(&server, &user, 1, 100_000).await; // rewrites c/000
    let (_, page) = server.get(&format!("/v1/pull?since={head}&limit=500"), &user).await;
    assert_eq!(page["records"].as_array().unwrap().len(), 1, "{}", page["has_more"]);
    assert_eq!(page["records"][0]["value"], value_of(0, 100_000));
    assert_eq!(page["has_more"], false);
}

async fn an_export_streams_every_live_record_in_key_order_across_batches(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let user = server.user("export").await;
    // 3 MB: several of the export's ~1 MiB batches.
    import_items(&server, &user, 30, 100_000).await;
    let (status, _) = server.delete("/api/storage/c:007", &user).await;
    assert_eq!(status, StatusCode::OK);
    let (_, stats) = server.get("/v1/stats", &user).await;

    let (status, export) = server.get("/v1/export", &user).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(export["revision"], stats["revision"]);
    let records = export["records"].as_array().unwrap();
    let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..30).filter(|i| *i != 7).map(|i| format!("{i:03}")).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    for record in records {
        let n: usize = record["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(record["value"], value_of(n, 100_000));
        assert_eq!(record["deleted"], false);
    }

    let (status, flat) = server.get("/api/storage/export", &user).await;
    assert_eq!(status, StatusCode::OK);
    let flat = flat.as_object().unwrap();
    assert_eq!(flat.len(), 29);
    assert_eq!(flat["c:029"], value_of(29, 100_000));
    assert!(!flat.contains_key("c:007"));
}

async fn an_export_past_the_per_user_cap_is_refused_while_one_is_being_read(backend: Backend) {
    let server = TestServer::start_with(&backend, |config| {
        config.limits.max_exports_per_user = 1;
    })
    .await;
    let user = server.user("exports").await;
    // ~27 MB: more than loopback socket buffers hold, so an unread export stays in progress.
    import_items(&server, &user, 110, 250_000).await;

    let reading =
        server.http.get(server.url("/v1/export")).bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(reading.status(), StatusCode::OK);

    let (status, body) = server.get("/v1/export", &user).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited");
    let (status, _) = server.get("/api/storage/export", &user).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the CodeForge export shares the cap");
    // Another user is not affected.
    let other = server.user("exports-other").await;
    let (status, _) = server.get("/v1/export", &other).await;
    assert_eq!(status, StatusCode::OK);

    // The client goes away: its place is freed once the server notices.
    drop(reading);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, export) = server.get("/v1/export", &user).await;
        if status == StatusCode::OK {
            assert_eq!(export["records"].as_array().unwrap().len(), 110);
            break;
        }
        assert!(Instant::now() < deadline, "the export's place was never freed: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_export_not_read_within_the_bulk_timeout_is_cut_and_frees_its_place(backend: Backend) {
    let server = TestServer::start_with(&backend, |config| {
        config.limits.max_exports_per_user = 1;
        // Bulk routes get ten times this: 5 s.
        config.limits.request_timeout = Duration::from_millis(500);
    })
    .await;
    let user = server.user("slow-reader").await;
    import_items(&server, &user, 110, 250_000).await;

    let started = Instant::now();
    let unread =
        server.http.get(server.url("/v1/export")).bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(unread.status(), StatusCode::OK);
    // While the slow reader holds it, the user's place is taken...
    let (status, _) = server.get("/v1/export", &user).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ...until the deadline frees it, though this client never reads a byte.
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, export) = server.get("/v1/export", &user).await;
        if status == StatusCode::OK {
            assert_eq!(export["records"].as_array().unwrap().len(), 110);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the export was never cut");
    }
    assert!(started.elapsed() >= Duration::from_secs(4), "cut before its deadline");
    // The slow reader's answer is cut, never a shorter export that parses.
    let rest = unread.bytes().await;
    assert!(
        rest.map_or(true, |bytes| serde_json::from_slice::<Value>(&bytes).is_err()),
        "a cut export read as complete JSON"
    );
}

async fn a_second_import_of_one_user_is_refused_before_its_body_is_read(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let user = server.user("imports").await;

    // The first import sends its head and the start of its body, then waits.
    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    body_tx
        .send(Ok(br#"{"items":[{"collection":"c","id":"slow","value":1}"#.to_vec()))
        .await
        .unwrap();
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(body_rx));
    let first = tokio::spawn(
        server.http.post(server.url("/v1/import")).bearer_auth(&user.token).body(body).send(),
    );
    // Let the first import's head reach the server (a step, not a timing assertion: a slower
    // server would make the second import take the place first, failing below loudly).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let second = json!({ "items": [{ "collection": "c", "id": "fast", "value": 2 }] });
    let (status, answer) = server.post("/v1/import", &user, second.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("imports in progress"), "{answer}");

    body_tx.send(Ok(b"]}".to_vec())).await.unwrap();
    drop(body_tx);
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let (status, answer) = server.post("/v1/import", &user, second).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let records = server.pull_all(&user, 0, 500).await;
    assert_eq!(records.len(), 2);
}
