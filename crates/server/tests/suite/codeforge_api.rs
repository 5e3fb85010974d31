//! CodeForge's key-value storage API: every row of its table, keys with `/`, `:` and unicode,
//! route names vs keys, the CodeForge anonymous user (and its old flag and environment variable
//! names), atomic upserts.

use std::process::Child;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{binary_create_token, put_op, spawn_binary, unique, Backend, TestServer};

backend_tests!(
    every_row_of_the_codeforge_table,
    keys_may_hold_slashes_colons_and_unicode,
    route_names_and_keys_do_not_collide,
    codeforge_writes_are_the_same_records_as_sync,
    anonymous_user_maps_unauthenticated_codeforge_requests,
    concurrent_puts_of_one_key_all_succeed,
    clear_leaves_tombstones_that_sync,
    keys_in_collections_starting_with_two_underscores_are_refused,
);

async fn every_row_of_the_codeforge_table(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    // GET /health
    let (status, health) = server.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    assert!(chrono_like(health["timestamp"].as_str().unwrap()));
    assert_eq!(health["database"], "ok");
    assert!(!health["version"].as_str().unwrap().is_empty());
    // PUT and POST /api/storage/<key>
    let (status, body) =
        server.put("/api/storage/files:b", &alice, json!({"value": {"n": 2}})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    let (status, body) = server.post("/api/storage/files:a", &alice, json!({"value": [1]})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    let (status, body) = server.put("/api/storage/files:c", &alice, json!({"other": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"error": "Missing value field", "code": "missing_field"}));
    // A null value is a value.
    let (status, _) = server.put("/api/storage/files:null", &alice, json!({"value": null})).await;
    assert_eq!(status, StatusCode::OK);
    // GET /api/storage/<key>
    let (status, body) = server.get("/api/storage/files:b", &alice).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"value": {"n": 2}})));
    let (status, body) = server.get("/api/storage/files:null", &alice).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"value": null})));
    let (status, body) = server.get("/api/storage/files:nope", &alice).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "Key not found", "code": "not_found"}));
    // GET /api/storage/keys, sorted
    let (status, body) = server.get("/api/storage/keys", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"keys": ["files:a", "files:b", "files:null"]}));
    // DELETE /api/storage/<key>
    let (status, body) = server.delete("/api/storage/files:null", &alice).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    let (status, body) = server.delete("/api/storage/files:null", &alice).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "Key not found");
    let (status, _) = server.get("/api/storage/files:null", &alice).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a tombstone reads as not found");
    // GET /api/storage/export
    let (status, body) = server.get("/api/storage/export", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"files:a": [1], "files:b": {"n": 2}}));
    // POST /api/storage/import
    let (status, body) = server
        .post("/api/storage/import", &alice, json!({"models:m1": {"x": 1}, "files:a": "replaced"}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true, "imported": 2})));
    let (status, body) = server.post("/api/storage/import", &alice, json!([1, 2])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "Data must be an object");
    // GET /api/storage/stats
    let (status, body) = server.get("/api/storage/stats", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_keys"], 3);
    let expected_size = "\"replaced\"".len() + "{\"n\":2}".len() + "{\"x\":1}".len();
    assert_eq!(body["total_size_bytes"], expected_size);
    // POST /api/storage/clear
    let (status, body) = server.post("/api/storage/clear", &alice, json!(null)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    let (_, body) = server.get("/api/storage/keys", &alice).await;
    assert_eq!(body, json!({"keys": []}));
    let (_, body) = server.get("/api/storage/export", &alice).await;
    assert_eq!(body, json!({}));
}

fn chrono_like(timestamp: &str) -> bool {
    timestamp.len() >= 20 && timestamp.as_bytes()[4] == b'-' && timestamp.contains('T')
}

async fn keys_may_hold_slashes_colons_and_unicode(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let cases = [
        ("files:src/dir/main.rs", "/api/storage/files:src/dir/main.rs"),
        ("files:a/b", "/api/storage/files:a%2Fb"),
        ("notes:a:b:c", "/api/storage/notes:a:b:c"),
        ("files:ü ✓/ñ.txt", "/api/storage/files:%C3%BC%20%E2%9C%93/%C3%B1.txt"),
        ("plain", "/api/storage/plain"),
        ("q:what?#x", "/api/storage/q:what%3F%23x"),
    ];
    for (index, (key, path)) in cases.iter().enumerate() {
        let (status, body) = server.put(path, &alice, json!({"value": index})).await;
        assert_eq!(status, StatusCode::OK, "{key}: {body}");
        let (status, body) = server.get(path, &alice).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"value": index})), "{key}");
    }
    let (_, body) = server.get("/api/storage/keys", &alice).await;
    let mut expected: Vec<&str> = cases.iter().map(|(key, _)| *key).collect();
    expected.sort();
    assert_eq!(body, json!({"keys": expected}));
    // The same items through the sync protocol: split at the first colon.
    let records = server.pull_all(&alice, 0, 100).await;
    let pairs: Vec<(String, String)> = records
        .iter()
        .map(|r| (r["collection"].as_str().unwrap().into(), r["id"].as_str().unwrap().into()))
        .collect();
    assert!(pairs.contains(&("files".into(), "src/dir/main.rs".into())));
    assert!(pairs.contains(&("notes".into(), "a:b:c".into())));
    assert!(pairs.contains(&("".into(), "plain".into())));
    assert!(pairs.contains(&("files".into(), "ü ✓/ñ.txt".into())));
    for (_, path) in cases {
        let (status, _) = server.delete(path, &alice).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // Keys that cannot be stored are a 400 on write, 404 on read; invalid UTF-8 is a 400.
    let (status, body) = server.put("/api/storage/files:%0A", &alice, json!({"value": 1})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")));
    let (status, body) = server.put("/api/storage/%FF", &alice, json!({"value": 1})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")));
    let (status, _) = server.get("/api/storage/files:", &alice).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn route_names_and_keys_do_not_collide(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    for name in ["keys", "export", "stats", "import", "clear", "item"] {
        // PUT on a route name is a key write.
        let (status, _) =
            server.put(&format!("/api/storage/{name}"), &alice, json!({"value": name})).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        // The alias always reads a key.
        let (status, body) = server.get(&format!("/api/storage/item/{name}"), &alice).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"value": name})), "{name}");
    }
    // Percent-encoding one character also reads the key.
    let (_, body) = server.get("/api/storage/%73tats", &alice).await;
    assert_eq!(body, json!({"value": "stats"}));
    // The literal spelling is still the route.
    let (_, stats) = server.get("/api/storage/stats", &alice).await;
    assert_eq!(stats["total_keys"], 6);
    let (_, keys) = server.get("/api/storage/keys", &alice).await;
    assert_eq!(keys, json!({"keys": ["clear", "export", "import", "item", "keys", "stats"]}));
    // Keys under `item/` go through the alias.
    let (status, _) = server.put("/api/storage/item/item/x", &alice, json!({"value": 1})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = server.get("/api/storage/item/item/x", &alice).await;
    assert_eq!(body, json!({"value": 1}));
    let (status, _) = server.delete("/api/storage/item/clear", &alice).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.get("/api/storage/item/clear", &alice).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn codeforge_writes_are_the_same_records_as_sync(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    server.push(&alice, json!([put_op("p", "files", "a.rs", json!({"v": 1}), None)])).await;
    let (_, body) = server.get("/api/storage/files:a.rs", &alice).await;
    assert_eq!(body, json!({"value": {"v": 1}}));
    // A CodeForge PUT is an unconditional upsert at a new revision.
    server.put("/api/storage/files:a.rs", &alice, json!({"value": {"v": 2}})).await;
    let answer =
        server.push(&alice, json!([put_op("q", "files", "a.rs", json!({"v": 3}), Some(1))])).await;
    assert_eq!(answer["results"][0]["status"], "conflict");
    assert_eq!(answer["results"][0]["current"]["value"], json!({"v": 2}));
    assert_eq!(answer["results"][0]["current"]["revision"], 2);
    // A CodeForge DELETE is a tombstone.
    server.delete("/api/storage/files:a.rs", &alice).await;
    let records = server.pull_all(&alice, 2, 100).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["deleted"], true);
    assert_eq!(records[0]["revision"], 3);
}

async fn anonymous_user_maps_unauthenticated_codeforge_requests(backend: Backend) {
    let name = crate::harness::unique("anonymous");
    let server =
        TestServer::start_with(&backend, move |c| c.codeforge_anonymous_user = Some(name)).await;
    let (status, _) = server
        .call(Method::PUT, "/api/storage/files:x", None, Some(json!({"value": "anon"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.call(Method::GET, "/api/storage/stats", None, None).await;
    assert_eq!((status, &body["total_keys"]), (StatusCode::OK, &json!(1)));
    // The sync protocol still needs a token; a wrong token is never downgraded to anonymous.
    let (status, _) = server.call(Method::GET, "/v1/pull", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.call(Method::GET, "/api/storage/keys", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Other users do not see the anonymous namespace.
    let bob = server.user("bob").await;
    let (status, _) = server.get("/api/storage/files:x", &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without the flag, anonymous CodeForge requests are refused.
    let strict = TestServer::start(&backend).await;
    let (status, body) = strict.call(Method::GET, "/api/storage/stats", None, None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
}

/// The anonymous user's flag and environment variable were named "legacy" before CodeForge was
/// called by its name; the old names still work. Runs the real binary: the flag alias is clap's,
/// the old variable is read by the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anonymous_user_keeps_its_old_flag_and_environment_variable_names() {
    const NEW_ENV: &str = "PERSIST_CODEFORGE_ANONYMOUS_USER";
    const OLD_ENV: &str = "PERSIST_LEGACY_ANONYMOUS_USER";
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("persist.sqlite3").display().to_string();
    let names: Vec<String> = (0..4).map(|n| unique(&format!("anonymous{n}"))).collect();
    let tokens: Vec<String> =
        names.iter().map(|name| binary_create_token(&database, name)).collect();
    let http = reqwest::Client::new();
    // (case, flags, environment, the user whose namespace anonymous requests must land in)
    let cases = [
        ("old flag", vec!["--legacy-anonymous-user", &names[0]], vec![], 0),
        ("old variable", vec![], vec![(OLD_ENV, &names[1])], 1),
        (
            "new variable over the old one",
            vec![],
            vec![(NEW_ENV, &names[2]), (OLD_ENV, &names[3])],
            2,
        ),
        (
            "flag over the old variable",
            vec!["--codeforge-anonymous-user", &names[3]],
            vec![(OLD_ENV, &names[0])],
            3,
        ),
    ];
    for (index, (case, flags, variables, expected)) in cases.into_iter().enumerate() {
        let (child, base) = spawn_binary(&database, |command| {
            command.env_remove(NEW_ENV).env_remove(OLD_ENV).args(flags).envs(variables);
        });
        let _stop = KillOnDrop(child);
        let url = format!("{base}/api/storage/files:case{index}");
        let status = http.put(&url).json(&json!({"value": case})).send().await.unwrap().status();
        assert_eq!(status, StatusCode::OK, "{case}: an anonymous PUT is accepted");
        for (user, token) in tokens.iter().enumerate() {
            let response = http.get(&url).bearer_auth(token).send().await.unwrap();
            let wanted = if user == expected { StatusCode::OK } else { StatusCode::NOT_FOUND };
            assert_eq!(response.status(), wanted, "{case}: namespace of user {user}");
        }
    }
}

/// Stops a spawned server even when an assertion fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn concurrent_puts_of_one_key_all_succeed(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let http = server.http.clone();
        let url = server.url("/api/storage/files:hot");
        let token = alice.token.clone();
        tasks.push(tokio::spawn(async move {
            let response =
                http.put(url).bearer_auth(token).json(&json!({"value": i})).send().await.unwrap();
            response.status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let (_, stats) = server.get("/v1/stats", &alice).await;
    assert_eq!(stats["revision"], 40, "every PUT wrote its own revision");
    assert_eq!(stats["total_keys"], 1);
}

async fn clear_leaves_tombstones_that_sync(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    server.put("/api/storage/a:1", &alice, json!({"value": 1})).await;
    server.put("/api/storage/a:2", &alice, json!({"value": 2})).await;
    server.delete("/api/storage/a:2", &alice).await;
    let (status, _) = server.post("/api/storage/clear", &alice, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let records = server.pull_all(&alice, 3, 100).await;
    assert_eq!(records.len(), 1, "only the live item got a new tombstone");
    assert_eq!(
        (records[0]["id"].as_str(), records[0]["deleted"].as_bool()),
        (Some("1"), Some(true))
    );
}

/// `__…` collections are the client's own bookkeeping stores (`persist_protocol::RESERVED_PREFIX`),
/// so a CodeForge key `__x:y` cannot be written (and reads as absent, like every invalid key).
async fn keys_in_collections_starting_with_two_underscores_are_refused(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let (status, body) = server.put("/api/storage/__x:y", &alice, json!({"value": 1})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")));
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("reserved") && message.contains("__x"), "{message}");
    let (status, _) = server.get("/api/storage/__x:y", &alice).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = server.post("/api/storage/import", &alice, json!({"__x:y": 1})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")));
    let (_, keys) = server.get("/api/storage/keys", &alice).await;
    assert_eq!(keys, json!({"keys": []}), "nothing was written");
}
