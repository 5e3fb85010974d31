//! The sync protocol: push, pull, export, import, stats.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{delete_op, put_op, Backend, TestServer};

backend_tests!(
    push_then_pull_round_trips_records,
    the_same_push_sent_twice_applies_once_and_gets_the_same_answer,
    a_stale_base_revision_conflicts_with_the_servers_record,
    nothing_to_disagree_about_is_applied_at_the_current_revision,
    pull_pages_are_ordered_and_include_tombstones,
    invalid_ops_are_rejected_one_by_one,
    collections_starting_with_two_underscores_are_rejected,
    export_and_import_round_trip,
    stats_count_live_records,
);

async fn push_then_pull_round_trips_records(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let answer = server
        .push(
            &alice,
            json!([
                put_op("o1", "files", "a.rs", json!({"name": "a.rs", "size": 3}), None),
                {
                    "op_id": "o2", "collection": "models", "id": "m/1", "value": [1, "two", null],
                    "hlc": {"wall_ms": 5, "counter": 1, "node": "tab-1"}
                },
            ]),
        )
        .await;
    assert_eq!(
        answer,
        json!({"results": [
            {"op_id": "o1", "status": "applied", "revision": 1},
            {"op_id": "o2", "status": "applied", "revision": 2},
        ], "revision": 2})
    );
    let records = server.pull_all(&alice, 0, 500).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["collection"], "files");
    assert_eq!(records[0]["value"], json!({"name": "a.rs", "size": 3}));
    assert_eq!(records[0]["revision"], 1);
    assert_eq!(records[0]["deleted"], false);
    assert!(records[0]["updated_at"].as_i64().unwrap() > 0);
    assert_eq!(records[1]["id"], "m/1");
    assert_eq!(records[1]["hlc"], json!({"wall_ms": 5, "counter": 1, "node": "tab-1"}));
    // An update based on the current revision applies at a new revision.
    let answer =
        server.push(&alice, json!([put_op("o3", "files", "a.rs", json!("v2"), Some(1))])).await;
    assert_eq!(answer["results"][0], json!({"op_id": "o3", "status": "applied", "revision": 3}));
    let since_two = server.pull_all(&alice, 2, 500).await;
    assert_eq!(since_two.len(), 1);
    assert_eq!(since_two[0]["value"], "v2");
}

async fn the_same_push_sent_twice_applies_once_and_gets_the_same_answer(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    server.push(&alice, json!([put_op("first", "c", "taken", json!(0), None)])).await;
    let ops = json!([
        put_op("p1", "c", "x", json!({"n": 1}), None),
        delete_op("p2", "c", "missing", None),
        put_op("p3", "c", "taken", json!("mine"), None),
    ]);
    let first = server.push(&alice, ops.clone()).await;
    let second = server.push(&alice, ops).await;
    assert_eq!(first["results"], second["results"]);
    assert_eq!(first["results"][0]["status"], "applied");
    assert_eq!(first["results"][2]["status"], "conflict");
    // Applied once: one record version for x, no extra revision.
    let records = server.pull_all(&alice, 0, 500).await;
    let x_versions = records.iter().filter(|r| r["id"] == "x").count();
    assert_eq!(x_versions, 1);
    assert_eq!(second["revision"], first["revision"]);
    // The same op id inside one push also answers once.
    let twice = server
        .push(
            &alice,
            json!([put_op("d1", "c", "y", json!(1), None), put_op("d1", "c", "y", json!(1), None)]),
        )
        .await;
    assert_eq!(twice["results"][0], twice["results"][1]);
}

async fn a_stale_base_revision_conflicts_with_the_servers_record(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    server.push(&alice, json!([put_op("a", "notes", "n1", json!({"text": "v1"}), None)])).await;
    server.push(&alice, json!([put_op("b", "notes", "n1", json!({"text": "v2"}), Some(1))])).await;
    // Another device still based on revision 1.
    let answer = server
        .push(
            &alice,
            json!([
                put_op("c", "notes", "n1", json!({"text": "other"}), Some(1)),
                put_op("d", "notes", "new", json!(1), Some(9)),
                put_op("e", "notes", "n2", json!("fine"), None),
            ]),
        )
        .await;
    let conflict = &answer["results"][0];
    assert_eq!(conflict["status"], "conflict");
    assert_eq!(conflict["current"]["value"], json!({"text": "v2"}));
    assert_eq!(conflict["current"]["revision"], 2);
    assert_eq!(answer["results"][1], json!({"op_id": "d", "status": "conflict", "current": null}));
    assert_eq!(answer["results"][2]["status"], "applied", "other ops of the push still apply");
    // A put onto a tombstone with a stale base conflicts and shows the tombstone.
    server.push(&alice, json!([delete_op("f", "notes", "n2", Some(3))])).await;
    let answer =
        server.push(&alice, json!([put_op("g", "notes", "n2", json!("back"), Some(3))])).await;
    assert_eq!(answer["results"][0]["status"], "conflict");
    assert_eq!(answer["results"][0]["current"]["deleted"], true);
    assert_eq!(answer["results"][0]["current"]["revision"], 4);
}

async fn nothing_to_disagree_about_is_applied_at_the_current_revision(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    server.push(&alice, json!([put_op("a", "c", "i", json!({"x": 1, "y": [1, 2]}), None)])).await;
    server.push(&alice, json!([put_op("b", "c", "gone", json!(1), None)])).await;
    server.push(&alice, json!([delete_op("c", "c", "gone", Some(2))])).await;
    let answer = server
        .push(
            &alice,
            json!([
                // Same value, stale base: nothing to disagree about.
                put_op("d", "c", "i", json!({"y": [1, 2], "x": 1}), None),
                // Delete onto a tombstone / an absent item.
                delete_op("e", "c", "gone", Some(1)),
                delete_op("f", "c", "never", Some(5)),
            ]),
        )
        .await;
    assert_eq!(
        answer["results"],
        json!([
            {"op_id": "d", "status": "applied", "revision": 1},
            {"op_id": "e", "status": "applied", "revision": 3},
            {"op_id": "f", "status": "applied", "revision": 0},
        ])
    );
    assert_eq!(answer["revision"], 3, "nothing was written");
}

async fn pull_pages_are_ordered_and_include_tombstones(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let ops: Vec<_> =
        (0..7).map(|i| put_op(&format!("p{i}"), "c", &format!("k{i}"), json!(i), None)).collect();
    server.push(&alice, json!(ops)).await;
    server
        .push(
            &alice,
            json!([delete_op("d1", "c", "k1", Some(2)), delete_op("d4", "c", "k4", Some(5))]),
        )
        .await;
    let (status, page) = server.get("/v1/pull?since=0&limit=3", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["records"].as_array().unwrap().len(), 3);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["next_since"], 4);
    assert_eq!(page["head"], 9);
    let records = server.pull_all(&alice, 0, 2).await;
    let revisions: Vec<u64> = records.iter().map(|r| r["revision"].as_u64().unwrap()).collect();
    // k1 and k4 moved to revisions 8 and 9 as tombstones.
    assert_eq!(revisions, [1, 3, 4, 6, 7, 8, 9]);
    let tombstones: Vec<_> = records.iter().filter(|r| r["deleted"] == true).collect();
    assert_eq!(tombstones.len(), 2);
    assert_eq!(tombstones[0]["id"], "k1");
    assert_eq!(tombstones[0]["value"], serde_json::Value::Null);
    let (_, empty) = server.get("/v1/pull?since=9", &alice).await;
    assert_eq!(empty, json!({"records": [], "next_since": 9, "has_more": false, "head": 9}));
}

async fn invalid_ops_are_rejected_one_by_one(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| c.limits.max_value_bytes = 100).await;
    let alice = server.user("alice").await;
    let answer = server
        .push(
            &alice,
            json!([
                put_op("bad-collection", "a:b", "x", json!(1), None),
                put_op("empty-id", "c", "", json!(1), None),
                put_op("too-big", "c", "big", json!("x".repeat(200)), None),
                put_op("", "c", "no-op-id", json!(1), None),
                put_op("ok", "c", "fine", json!(1), None),
            ]),
        )
        .await;
    let statuses: Vec<_> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["code"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        statuses,
        [
            ("rejected", "invalid_input"),
            ("rejected", "invalid_input"),
            ("rejected", "payload_too_large"),
            ("rejected", "invalid_input"),
            ("applied", ""),
        ]
    );
    assert_eq!(server.pull_all(&alice, 0, 10).await.len(), 1);
}

/// `__…` collections are the client's own bookkeeping stores (`persist_protocol::RESERVED_PREFIX`):
/// never synced, so a pushed op naming one is a client bug, answered as such.
async fn collections_starting_with_two_underscores_are_rejected(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let answer = server
        .push(
            &alice,
            json!([
                put_op("reserved", "__x", "y", json!(1), None),
                delete_op("reserved-delete", "__outbox", "y", None),
                put_op("ok", "_x", "y", json!(1), None),
            ]),
        )
        .await;
    for result in &answer["results"].as_array().unwrap()[..2] {
        assert_eq!(
            (&result["status"], &result["code"]),
            (&json!("rejected"), &json!("invalid_input"))
        );
        let message = result["message"].as_str().unwrap();
        assert!(message.contains("reserved") && message.contains("\"__\""), "{message}");
    }
    assert_eq!(answer["results"][2]["status"], "applied", "one underscore is an ordinary name");
    let records = server.pull_all(&alice, 0, 10).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["collection"], "_x");
}

async fn export_and_import_round_trip(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let items: Vec<_> = (0..50)
        .map(|i| json!({"collection": "files", "id": format!("dir/{i}"), "value": {"i": i}}))
        .collect();
    let (status, answer) = server.post("/v1/import", &alice, json!({ "items": items })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"imported": 50, "revision": 50}));
    server.push(&alice, json!([delete_op("d", "files", "dir/7", Some(8))])).await;
    let (status, export) = server.get("/v1/export", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(export["revision"], 51);
    let records = export["records"].as_array().unwrap();
    assert_eq!(records.len(), 49, "tombstones are not exported");
    assert!(records.iter().all(|r| r["deleted"] == false));
    // Importing an export into another namespace reproduces it.
    let bob = server.user("bob").await;
    let items: Vec<_> = records
        .iter()
        .map(|r| json!({"collection": r["collection"], "id": r["id"], "value": r["value"]}))
        .collect();
    let (status, _) = server.post("/v1/import", &bob, json!({ "items": items })).await;
    assert_eq!(status, StatusCode::OK);
    let (_, bob_export) = server.get("/v1/export", &bob).await;
    let values = |e: &serde_json::Value| -> Vec<serde_json::Value> {
        e["records"].as_array().unwrap().iter().map(|r| json!([r["id"], r["value"]])).collect()
    };
    assert_eq!(values(&bob_export), values(&export));
    // Duplicate keys in one import: the last wins.
    let (status, answer) = server
        .post(
            "/v1/import",
            &bob,
            json!({"items": [
                {"collection": "d", "id": "same", "value": 1},
                {"collection": "d", "id": "same", "value": 2},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, value) = server.get("/api/storage/d:same", &bob).await;
    assert_eq!(value, json!({"value": 2}));
    // An invalid key fails the whole import.
    let (status, error) = server
        .post("/v1/import", &bob, json!({"items": [{"collection": "a:b", "id": "x", "value": 1}]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid_input");
}

async fn stats_count_live_records(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    server
        .push(
            &alice,
            json!([
                put_op("1", "files", "a", json!("12345"), None),
                put_op("2", "files", "b", json!(1), None),
                put_op("3", "models", "m", json!({}), None),
            ]),
        )
        .await;
    server.push(&alice, json!([delete_op("4", "files", "b", Some(2))])).await;
    let (status, stats) = server.get("/v1/stats", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats,
        json!({
            "total_keys": 2,
            "total_size_bytes": 9,
            "revision": 4,
            "collections": {"files": 1, "models": 1}
        })
    );
}
