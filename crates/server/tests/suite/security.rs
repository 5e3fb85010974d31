//! Authentication, namespaces, limits, error shapes.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::events::EventReader;
use crate::harness::{put_op, unique, Backend, TestServer, User};

backend_tests!(
    no_user_reaches_another_users_namespace,
    every_route_but_health_needs_a_valid_token,
    bodies_and_values_past_the_limits_are_413,
    a_user_past_the_rate_limit_gets_429,
    malformed_input_is_400_with_a_stable_code,
    unknown_routes_and_methods_are_json_errors,
    cors_allows_only_listed_origins,
    revoked_tokens_stop_working_and_others_do_not,
);

/// Alice's data, written through both APIs.
async fn alice_with_data(server: &TestServer) -> User {
    let alice = server.user("alice").await;
    server
        .push(&alice, json!([put_op("a1", "files", "secret.rs", json!("alice-secret"), None)]))
        .await;
    let (status, _) =
        server.put("/api/storage/notes:diary", &alice, json!({"value": "alice-diary"})).await;
    assert_eq!(status, StatusCode::OK);
    alice
}

async fn no_user_reaches_another_users_namespace(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = alice_with_data(&server).await;
    let mallory = server.user("mallory").await;
    let leaks = |body: &Value| body.to_string().contains("alice-");
    // Every read endpoint with Mallory's token: nothing of Alice's.
    for path in [
        "/v1/pull?since=0",
        "/v1/export",
        "/v1/stats",
        "/api/storage/keys",
        "/api/storage/export",
        "/api/storage/stats",
        "/api/storage/files:secret.rs",
        "/api/storage/notes:diary",
        "/api/storage/item/notes:diary",
    ] {
        let (status, body) = server.get(path, &mallory).await;
        assert!(!leaks(&body), "{path} leaked: {body}");
        assert!(status == StatusCode::OK || status == StatusCode::NOT_FOUND, "{path}: {status}");
    }
    let (_, stats) = server.get("/v1/stats", &mallory).await;
    assert_eq!(stats["total_keys"], 0);
    // Writes land in Mallory's own namespace: no conflict with Alice's item, Alice unchanged.
    let answer = server
        .push(&mallory, json!([put_op("m1", "files", "secret.rs", json!("mallory"), None)]))
        .await;
    assert_eq!(answer["results"][0], json!({"op_id": "m1", "status": "applied", "revision": 1}));
    // Reusing Alice's op id answers Mallory's own op, not Alice's.
    let answer = server
        .push(&mallory, json!([put_op("a1", "files", "other", json!("mallory"), None)]))
        .await;
    assert_eq!(answer["results"][0]["revision"], 2);
    let (status, _) = server.delete("/api/storage/notes:diary", &mallory).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.put("/api/storage/notes:diary", &mallory, json!({"value": "overwritten?"})).await;
    server.post("/api/storage/import", &mallory, json!({"notes:diary": "imported?"})).await;
    server
        .post(
            "/v1/import",
            &mallory,
            json!({"items": [{"collection": "files", "id": "secret.rs", "value": 0}]}),
        )
        .await;
    let (status, _) = server.post("/api/storage/clear", &mallory, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    // Mallory's event stream announces only Mallory's revisions.
    let first = crate::events::first_event(&server, &mallory.token).await;
    assert_eq!(first["revision"], server.get("/v1/stats", &mallory).await.1["revision"]);
    // Alice's namespace is exactly as she left it.
    let (_, export) = server.get("/api/storage/export", &alice).await;
    assert_eq!(export, json!({"files:secret.rs": "alice-secret", "notes:diary": "alice-diary"}));
    let (_, stats) = server.get("/v1/stats", &alice).await;
    assert_eq!(stats["revision"], 2);
}

async fn every_route_but_health_needs_a_valid_token(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let _alice = alice_with_data(&server).await;
    let routes = [
        (Method::POST, "/v1/push", Some(json!({"ops": []}))),
        (Method::GET, "/v1/pull?since=0", None),
        (Method::GET, "/v1/export", None),
        (Method::POST, "/v1/import", Some(json!({"items": []}))),
        (Method::GET, "/v1/events", None),
        (Method::GET, "/v1/stats", None),
        (Method::GET, "/api/storage/keys", None),
        (Method::GET, "/api/storage/export", None),
        (Method::POST, "/api/storage/import", Some(json!({}))),
        (Method::GET, "/api/storage/stats", None),
        (Method::POST, "/api/storage/clear", None),
        (Method::GET, "/api/storage/files:secret.rs", None),
        (Method::PUT, "/api/storage/files:x", Some(json!({"value": 1}))),
        (Method::DELETE, "/api/storage/notes:diary", None),
    ];
    for token in [None, Some("pst_not-a-real-token"), Some("")] {
        for (method, path, body) in &routes {
            let (status, error) = server.call(method.clone(), path, token, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}");
            assert_eq!(error["code"], "unauthorized");
        }
    }
    let (status, _) = server.call(Method::GET, "/v1/events?access_token=wrong", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn bodies_and_values_past_the_limits_are_413(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| {
        c.limits.max_body_bytes = 64 * 1024;
        c.limits.max_value_bytes = 1024;
        c.limits.max_import_bytes = 512 * 1024;
    })
    .await;
    let alice = server.user("alice").await;
    let big = "x".repeat(100 * 1024);
    let body =
        serde_json::to_vec(&json!({"ops": [put_op("o", "c", "i", json!(big), None)]})).unwrap();
    let (status, error) = server.call_raw(Method::POST, "/v1/push", Some(&alice.token), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error["code"], "payload_too_large");
    let body = serde_json::to_vec(&json!({"value": big})).unwrap();
    let (status, error) =
        server.call_raw(Method::PUT, "/api/storage/c:big", Some(&alice.token), body).await;
    assert_eq!(
        (status, &error["code"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("payload_too_large"))
    );
    // A value past the per-value limit in a small body.
    let (status, error) =
        server.put("/api/storage/c:v", &alice, json!({"value": "y".repeat(2000)})).await;
    assert_eq!(
        (status, &error["code"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("payload_too_large"))
    );
    // Imports have their own, larger limit; past it, 413 too.
    let items: Vec<_> = (0..2000)
        .map(|i| json!({"collection": "c", "id": format!("{i}"), "value": "z".repeat(100)}))
        .collect();
    let (status, answer) = server.post("/v1/import", &alice, json!({ "items": items })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let flat: serde_json::Map<String, Value> =
        (0..2000).map(|i| (format!("s:{i}"), json!("z".repeat(100)))).collect();
    let (status, answer) = server.post("/api/storage/import", &alice, Value::Object(flat)).await;
    assert_eq!((status, &answer["imported"]), (StatusCode::OK, &json!(2000)));
    let items: Vec<_> = (0..8000)
        .map(|i| json!({"collection": "c", "id": format!("{i}"), "value": "z".repeat(100)}))
        .collect();
    let (status, error) = server.post("/v1/import", &alice, json!({ "items": items })).await;
    assert_eq!(
        (status, &error["code"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("payload_too_large"))
    );
}

async fn a_user_past_the_rate_limit_gets_429(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| {
        c.limits.rate_limit_per_second = 0.01;
        c.limits.rate_limit_burst = 5;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    for _ in 0..5 {
        let (status, _) = server.get("/v1/stats", &alice).await;
        assert_eq!(status, StatusCode::OK);
    }
    let response =
        server.http.get(server.url("/v1/stats")).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "rate_limited");
    let (status, _) = server.get("/api/storage/keys", &alice).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the CodeForge API shares the limit");
    let (status, _) = server.get("/v1/stats", &bob).await;
    assert_eq!(status, StatusCode::OK, "limits are per user");
    let (status, _) = server.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn malformed_input_is_400_with_a_stable_code(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let token = Some(alice.token.as_str());
    let cases: [(Method, &str, &[u8], &str); 8] = [
        (Method::POST, "/v1/push", b"{not json", "malformed_json"),
        (Method::POST, "/v1/push", b"", "malformed_json"),
        (Method::POST, "/v1/push", br#"{"ops": 5}"#, "malformed_json"),
        (Method::POST, "/v1/push", br#"{"ops": [{"collection": "c"}]}"#, "malformed_json"),
        (Method::POST, "/v1/import", b"[]", "malformed_json"),
        (Method::PUT, "/api/storage/c:x", b"{\"value\": ", "malformed_json"),
        (Method::POST, "/api/storage/import", b"nope", "malformed_json"),
        (Method::POST, "/api/storage/import", b"\"string\"", "malformed_json"),
    ];
    for (method, path, body, code) in cases {
        let (status, error) = server.call_raw(method.clone(), path, token, body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path} {body:?}: {error}");
        assert_eq!(error["code"], code, "{method} {path}");
        assert!(error["error"].is_string());
    }
    let (status, error) = server.get("/v1/pull?since=abc", &alice).await;
    assert_eq!((status, &error["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_input")));
    let (status, error) = server.get("/v1/pull?since=-1", &alice).await;
    assert_eq!((status, &error["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_input")));
    let ops: Vec<_> = (0..1001).map(|i| put_op(&i.to_string(), "c", "i", json!(1), None)).collect();
    let (status, error) = server.post("/v1/push", &alice, json!({ "ops": ops })).await;
    assert_eq!((status, &error["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_input")));
}

async fn unknown_routes_and_methods_are_json_errors(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    for path in ["/nope", "/v1/nope", "/v2/push", "/api/other", "/api/storage"] {
        let (status, error) = server.get(path, &alice).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error["code"], "not_found", "{path}");
    }
    let (status, error) = server.call(Method::DELETE, "/v1/push", Some(&alice.token), None).await;
    assert_eq!(
        (status, &error["code"]),
        (StatusCode::METHOD_NOT_ALLOWED, &json!("method_not_allowed"))
    );
    let (status, error) =
        server.call(Method::PATCH, "/api/storage/c:x", Some(&alice.token), None).await;
    assert_eq!(
        (status, &error["code"]),
        (StatusCode::METHOD_NOT_ALLOWED, &json!("method_not_allowed"))
    );
}

async fn cors_allows_only_listed_origins(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| {
        c.cors_origins = vec!["https://app.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        server
            .http
            .request(Method::OPTIONS, server.url("/v1/push"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let allowed_headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed_headers.contains("authorization"));
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    let simple = server.http.get(server.url("/health")).header("origin", "https://evil.example");
    let simple = simple.send().await.unwrap();
    assert!(simple.headers().get("access-control-allow-origin").is_none());
    // Default: same origin only, no CORS headers at all.
    let strict = TestServer::start(&backend).await;
    let response = strict
        .http
        .get(strict.url("/health"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

async fn revoked_tokens_stop_working_and_others_do_not(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = unique("alice");
    let bob = server.user("bob").await;
    let first = server.running().create_token(&alice).await.unwrap();
    let second = server.running().create_token(&alice).await.unwrap();
    let works = |token: String| {
        let server = &server;
        async move { server.call(Method::GET, "/v1/stats", Some(&token), None).await.0 }
    };
    assert_eq!(works(first.clone()).await, StatusCode::OK, "cached as valid from here on");

    let listed = server.running().list_tokens(Some(&alice)).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|t| t.user == alice && t.id.len() == 12));
    assert!(listed.iter().all(|t| !first.contains(&t.id) && !second.contains(&t.id)));
    let first_id = listed
        .iter()
        .map(|t| t.id.clone())
        .find(|id| persist_server_hash_prefix(&first) == *id)
        .expect("the first token's id is its hash prefix");

    // Event streams of each token, open before any revocation.
    let mut first_events = EventReader::open(&server, &first).await;
    let mut second_events = EventReader::open(&server, &second).await;
    assert_eq!(first_events.next().await, Some(json!({"revision": 0})));
    assert_eq!(second_events.next().await, Some(json!({"revision": 0})));

    // One token by id: the running server refuses it at once, even though it was cached, and its
    // event stream ends; the other token and its stream go on.
    let revoked = server.running().revoke_tokens(&alice, Some(&first_id)).await.unwrap();
    assert_eq!(revoked, 1);
    assert_eq!(works(first.clone()).await, StatusCode::UNAUTHORIZED);
    // Well before the 30 s periodic check: the revocation itself ends the stream.
    let ended = first_events.next_within(std::time::Duration::from_secs(10)).await;
    assert_eq!(ended, None, "the revoked token's stream ended");
    assert_eq!(works(second.clone()).await, StatusCode::OK);
    assert_eq!(server.running().list_tokens(Some(&alice)).await.unwrap().len(), 1);
    let second_user = User { token: second.clone() };
    server.push(&second_user, json!([put_op("r1", "c", "i", json!(1), None)])).await;
    assert_eq!(second_events.next().await, Some(json!({"revision": 1})), "still streaming");

    // Another user's name never revokes alice's tokens, and a bad id is a clear error.
    assert_eq!(server.running().revoke_tokens(&unique("nobody"), None).await.unwrap(), 0);
    let error = server.running().revoke_tokens(&alice, Some("nothex!")).await.unwrap_err();
    assert!(error.to_string().contains("12 lowercase hex digits"), "{error}");
    assert_eq!(works(second.clone()).await, StatusCode::OK);

    // The command-line path (`token revoke <user>`): its own connection to the same database.
    let third = server.running().create_token(&alice).await.unwrap();
    let revoked = persist_server::revoke_tokens(&server.database, &alice, None).await.unwrap();
    assert_eq!(revoked, 2, "the second and the third");
    assert_eq!(works(third).await, StatusCode::UNAUTHORIZED, "never looked up, so not cached");
    assert!(persist_server::list_tokens(&server.database, Some(&alice)).await.unwrap().is_empty());
    assert_eq!(server.get("/v1/stats", &bob).await.0, StatusCode::OK, "bob is untouched");
}

/// A token's id as `token list` shows it: the first 12 hex digits of its SHA-256.
fn persist_server_hash_prefix(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
