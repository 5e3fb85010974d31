//! Hardening against hostile clients (issue 11): answers and stored state stay bounded, and odd
//! input is answered per op instead of being dropped or failing the request.

use std::time::Duration;

use serde_json::json;

use crate::harness::{delete_op, put_op, test_config, Backend, TestServer};

backend_tests!(
    conflicts_with_one_large_record_answer_it_once_and_remember_no_values,
    an_op_id_reused_for_another_change_is_rejected_not_applied,
    a_second_op_for_one_item_in_one_push_is_rejected_before_storage,
    control_characters_in_op_ids_and_long_hlc_nodes_are_rejected_per_op,
    the_dev_config_is_served_only_to_a_loopback_host,
    the_dev_token_stops_working_when_its_server_stops,
    a_killed_dev_servers_token_is_revoked_by_the_next_dev_start,
    anonymous_codeforge_writes_refuse_cross_site_requests,
    uploads_without_a_valid_token_are_refused_before_their_body_arrives,
    failed_authentications_from_one_address_are_cut_to_429_while_its_valid_users_keep_working,
);

/// 1,000 ops conflicting with one large record used to answer (and remember for 7 days) one copy
/// of the record per op.
async fn conflicts_with_one_large_record_answer_it_once_and_remember_no_values(backend: Backend) {
    const OPS: usize = 300;
    let server = TestServer::start(&backend).await;
    let (name, alice) = server.named_user("amplify").await;
    let big = "x".repeat(64 * 1024);
    server.push(&alice, json!([put_op("seed", "c", "big", json!({ "big": big }), None)])).await;
    let ops: Vec<_> =
        (0..OPS).map(|n| put_op(&format!("hit-{n:04}"), "c", "big", json!(n), Some(0))).collect();
    let request = json!({ "ops": ops });

    let send = || async {
        let response = server
            .http
            .post(server.url("/v1/push"))
            .bearer_auth(&alice.token)
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        (text.len(), serde_json::from_str::<serde_json::Value>(&text).unwrap())
    };
    let (size, answer) = send().await;
    // One copy of the record plus a short answer per op, not 300 copies.
    assert!(size < big.len() + OPS * 400, "the answer has {size} bytes");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), OPS);
    assert_eq!(results[0]["status"], "conflict");
    assert_eq!(results[0]["current"]["value"]["big"], json!(big));
    assert_eq!(results[0]["current"]["revision"], 1);
    for result in &results[1..] {
        // Never "current": null, which a client reads as "the server lost the item".
        assert_eq!(result["status"], "rejected", "{result}");
        assert_eq!(result["code"], "invalid_input", "{result}");
    }

    // Remembered answers hold no values. (The later ops of the item never reached storage: one
    // op per item per push; only the first push's op and this one's first are remembered.)
    let remembered = server.remembered_answers(&name).await;
    assert_eq!(remembered.len(), 2);
    for answer in &remembered {
        assert!(answer.len() < 100, "a remembered answer of {} bytes", answer.len());
        assert!(!answer.contains("xxxx"), "a remembered answer holds the value");
    }

    // A retry answered from memory shows the item as it is now, still once per push.
    let small = json!({"now": "small"});
    server.push(&alice, json!([put_op("update", "c", "big", small.clone(), Some(1))])).await;
    let (size, again) = send().await;
    assert!(size < OPS * 400, "the retry's answer has {size} bytes");
    let results = again["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "conflict", "{}", results[0]);
    assert_eq!(results[0]["current"]["value"], small);
    assert_eq!(results[0]["current"]["revision"], 2);
    assert!(results[1..].iter().all(|r| r["status"] == "rejected"));
    // Nothing was written by either push.
    assert_eq!(again["revision"], 2);
}

/// Ops of one item after the first in one push made the writer read (and compare) the item once
/// per op: 1,000 ops on one 255 KiB item held the writer for about a second. A client sends one
/// op per item per push, so the later ones are refused before storage is asked.
async fn a_second_op_for_one_item_in_one_push_is_rejected_before_storage(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("one-per-item").await;
    let answer = server
        .push(
            &alice,
            json!([
                put_op("first", "c", "x", json!("a"), None),
                // Based on the first op's revision: it would apply if it were allowed.
                put_op("second", "c", "x", json!("b"), Some(1)),
                put_op("other", "c", "y", json!("c"), None),
            ]),
        )
        .await;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "applied");
    assert_eq!(results[1]["status"], "rejected", "{}", results[1]);
    assert_eq!(results[1]["code"], "invalid_input");
    assert!(results[1]["message"].as_str().unwrap().contains("one op per item"), "{}", results[1]);
    assert_eq!(results[2]["status"], "applied");
    let records = server.pull_all(&alice, 0, 500).await;
    let x = records.iter().find(|r| r["id"] == "x").unwrap();
    assert_eq!((x["value"].clone(), x["revision"].as_u64()), (json!("a"), Some(1)));
}

/// An op id sent again with other content used to be answered "applied" while nothing was
/// written, and a second op with the same op id in one push was silently not applied.
async fn an_op_id_reused_for_another_change_is_rejected_not_applied(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("reuse").await;
    let first = server.push(&alice, json!([put_op("o1", "c", "y", json!(1), None)])).await;
    assert_eq!(first["results"][0]["status"], "applied");
    // The same op again: the same answer (a retry).
    let retry = server.push(&alice, json!([put_op("o1", "c", "y", json!(1), None)])).await;
    assert_eq!(retry["results"], first["results"]);
    // The same op id for other changes: rejected, nothing written.
    for other in [
        put_op("o1", "c", "y", json!(2), None),
        put_op("o1", "c", "y", json!(1), Some(1)),
        put_op("o1", "c", "z", json!(1), None),
        delete_op("o1", "c", "y", None),
    ] {
        let answer = server.push(&alice, json!([other])).await;
        let result = &answer["results"][0];
        assert_eq!(result["status"], "rejected", "{other}: {result}");
        assert_eq!(result["code"], "invalid_input", "{result}");
        assert_eq!(answer["revision"], 1);
    }
    // Twice in one push: the first applies, the second is answered, not dropped.
    let twice = server
        .push(
            &alice,
            json!([
                put_op("o2", "c", "w", json!("a"), None),
                put_op("o2", "c", "w", json!("b"), None),
                put_op("o3", "c", "v", json!("a"), None),
                put_op("o3", "c", "v", json!("a"), None),
            ]),
        )
        .await;
    let results = twice["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["status"], "applied");
    assert_eq!(results[1]["status"], "rejected", "{}", results[1]);
    assert_eq!(results[2]["status"], "applied");
    assert_eq!(results[3], results[2]);
    let records = server.pull_all(&alice, 0, 500).await;
    let value = |id: &str| records.iter().find(|r| r["id"] == id).map(|r| r["value"].clone());
    assert_eq!(value("y"), Some(json!(1)));
    assert_eq!(value("z"), None);
    assert_eq!(value("w"), Some(json!("a")));
    assert_eq!(records.len(), 3);
}

/// A NUL in an op id made a PostgreSQL push a 500; `hlc.node` had no size limit.
async fn control_characters_in_op_ids_and_long_hlc_nodes_are_rejected_per_op(backend: Backend) {
    let server = TestServer::start_with(&backend, |c| c.limits.max_value_bytes = 100).await;
    let alice = server.user("odd").await;
    let stamped = |op_id: &str, id: &str, node: String| {
        json!({
            "op_id": op_id, "collection": "c", "id": id, "value": 1,
            "hlc": {"wall_ms": 1, "counter": 0, "node": node}
        })
    };
    let answer = server
        .push(
            &alice,
            json!([
                put_op("nul\u{0}op", "c", "a", json!(1), None),
                put_op("line\nop", "c", "b", json!(1), None),
                stamped("long-node", "c", "x".repeat(129)),
                stamped("nul-node", "d", "n\u{0}".into()),
                stamped("fine-node", "e", "x".repeat(128)),
                put_op("fine", "c", "f", json!(1), None),
            ]),
        )
        .await;
    let statuses: Vec<_> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap().to_owned(), r["code"].clone()))
        .collect();
    let rejected = ("rejected".to_owned(), json!("invalid_input"));
    let applied = ("applied".to_owned(), serde_json::Value::Null);
    assert_eq!(
        statuses,
        vec![
            rejected.clone(),
            rejected.clone(),
            rejected.clone(),
            rejected,
            applied.clone(),
            applied
        ],
        "{answer}"
    );
    assert_eq!(answer["revision"], 2);
}

/// `/health` (no token needed) used to answer the storage error's text, which names the
/// database, its user and host. Runs on PostgreSQL, where the database can be taken away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_does_not_show_storage_errors() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else { return };
    let name = crate::harness::unique("health").replace('-', "_");
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
    let own_url = format!("{}/{name}", url.rsplit_once('/').unwrap().0);
    let config = crate::harness::test_config(persist_server::DatabaseConfig::Postgres(own_url));
    let mut server = TestServer::start_config(config, tempfile::tempdir().unwrap()).await;
    let (status, body) = server.call(reqwest::Method::GET, "/health", None, None).await;
    assert_eq!((status.as_u16(), &body["database"]), (200, &json!("ok")));

    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
    let response = server.http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["database"], "unavailable", "{text}");
    assert!(!text.contains(&name), "{text}");

    if let Some(running) = server.server.take() {
        let _ = running.shutdown().await;
    }
    admin.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await.unwrap();
}

/// A dev-mode server on `database`, keeping its token in `token_file`.
async fn dev_server(
    backend: &Backend,
    database: &std::path::Path,
    token_file: &std::path::Path,
    dev: bool,
) -> TestServer {
    let mut config = test_config(backend.database(database));
    config.dev = dev;
    config.dev_token_file = Some(token_file.to_path_buf());
    TestServer::start_config(config, tempfile::tempdir().unwrap()).await
}

/// A page of another site whose name a DNS rebinding points at 127.0.0.1 could read the dev
/// token: its requests carry its own host name.
async fn the_dev_config_is_served_only_to_a_loopback_host(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server(&backend, dir.path(), &dir.path().join("dev-token"), true).await;
    let port = server.running().local_addr().port();
    let with_host = |host: String| {
        let request = server.http.get(server.url("/dev-config.json")).header("host", host);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let token = server.running().dev_token().unwrap().to_owned();
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
        format!("localhost.attacker.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
    ] {
        let (status, text) = with_host(host.clone()).await;
        assert_eq!(status, 403, "{host}: {text}");
        assert!(!text.contains(&token), "{host}: {text}");
        assert!(text.contains("forbidden"), "{host}: {text}");
    }
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")]
    {
        let (status, text) = with_host(host.clone()).await;
        assert_eq!(status, 200, "{host}: {text}");
        assert!(text.contains(&token), "{host}: {text}");
    }
}

/// The dev token used to stay valid after a restart without `--dev`, and in every later `--dev`
/// run.
async fn the_dev_token_stops_working_when_its_server_stops(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("dev-token");
    let mut dev = dev_server(&backend, dir.path(), &token_file, true).await;
    let token = dev.running().dev_token().unwrap().to_owned();
    let stats = |server: &TestServer| {
        let request = server.http.get(server.url("/v1/stats")).bearer_auth(&token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(stats(&dev).await, 200);
    dev.stop().await;
    assert!(!token_file.exists(), "the stopped server left its dev token file");

    let mut plain = dev_server(&backend, dir.path(), &token_file, false).await;
    let dev_tokens = plain.running().list_tokens(Some("dev")).await.unwrap();
    let id = &persist_server_token_id(&token);
    assert!(!dev_tokens.iter().any(|t| &t.id == id), "the dev token outlived its server");
    assert_eq!(stats(&plain).await, 401);
    let codeforge = plain.http.get(plain.url("/api/storage/keys")).bearer_auth(&token);
    assert_eq!(codeforge.send().await.unwrap().status(), 401);
    // Other tokens still work.
    let alice = plain.user("alice").await;
    assert_eq!(plain.get("/v1/stats", &alice).await.0, 200);
    plain.stop().await;

    // Back in dev mode: a new token; the old one stays refused.
    let mut again = dev_server(&backend, dir.path(), &token_file, true).await;
    let fresh = again.running().dev_token().unwrap().to_owned();
    assert_ne!(fresh, token);
    assert_eq!(stats(&again).await, 401);
    again.stop().await;
}

/// A `--dev` server that is killed cannot revoke its token: the next `--dev` start revokes the one
/// its token file names.
async fn a_killed_dev_servers_token_is_revoked_by_the_next_dev_start(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("dev-token");
    let database = match backend.database(dir.path()) {
        persist_server::DatabaseConfig::Sqlite(path) => path.display().to_string(),
        persist_server::DatabaseConfig::Postgres(url) => url,
    };
    let (mut killed, base) = crate::harness::spawn_binary(&database, |command| {
        command.arg("--dev").arg("--dev-token-file").arg(&token_file);
    });
    let config: serde_json::Value =
        reqwest::get(format!("{base}/dev-config.json")).await.unwrap().json().await.unwrap();
    let token = config["token"].as_str().unwrap().to_owned();
    killed.kill().unwrap(); // SIGKILL: nothing runs at exit
    killed.wait().unwrap();
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);

    let mut next = dev_server(&backend, dir.path(), &token_file, true).await;
    let id = persist_server_token_id(&token);
    let dev_tokens = next.running().list_tokens(Some("dev")).await.unwrap();
    assert!(!dev_tokens.iter().any(|t| t.id == id), "the killed server's token is still valid");
    let stale = next.http.get(next.url("/v1/stats")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(stale.status(), 401);
    next.stop().await;
}

/// The id `token list` shows for a token: the first 12 hex digits of its SHA-256.
fn persist_server_token_id(token: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(token.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect::<String>()[..12].to_owned()
}

/// With `--codeforge-anonymous-user`, a page of any site could overwrite values and clear the
/// namespace with a cross-site `text/plain` POST (no preflight, no token needed).
async fn anonymous_codeforge_writes_refuse_cross_site_requests(backend: Backend) {
    let name = crate::harness::unique("anonymous");
    let server = TestServer::start_with(&backend, move |c| {
        c.codeforge_anonymous_user = Some(name);
        c.cors_origins = vec!["https://app.example".into()];
    })
    .await;
    let own_origin = server.base.clone();
    let send = |method: reqwest::Method,
                path: &str,
                content_type: Option<&str>,
                origin: Option<&str>,
                body: &str| {
        let mut request = server.http.request(method, server.url(path)).body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    use reqwest::Method;
    let value = r#"{"value": "mine"}"#;
    let json = Some("application/json");
    assert_eq!(send(Method::PUT, "/api/storage/files:x", json, None, value).await.0, 200);

    // The forged requests: refused, nothing written or cleared.
    let attacker = Some("https://attacker.example");
    let forged = r#"{"value": "forged"}"#;
    for (method, path, content_type, origin) in [
        (Method::POST, "/api/storage/files:x", Some("text/plain"), attacker),
        (Method::POST, "/api/storage/files:x", Some("text/plain;charset=UTF-8"), None),
        (Method::POST, "/api/storage/files:x", None, None),
        (Method::POST, "/api/storage/clear", Some("text/plain"), attacker),
        (Method::POST, "/api/storage/import", Some("application/x-www-form-urlencoded"), attacker),
        (Method::PUT, "/api/storage/files:x", json, attacker),
        (Method::DELETE, "/api/storage/files:x", None, attacker),
        (Method::POST, "/api/storage/clear", json, Some("null")),
    ] {
        let (status, text) = send(method.clone(), path, content_type, origin, forged).await;
        assert_eq!(status, 403, "{method} {path} {content_type:?} {origin:?}: {text}");
        assert!(text.contains("forbidden"), "{text}");
    }
    let (status, text) = send(Method::GET, "/api/storage/files:x", None, None, "").await;
    assert_eq!((status, text.as_str()), (200, r#"{"value":"mine"}"#));

    // The app's own origin, a CORS origin and non-browser clients still work.
    for origin in [Some(own_origin.as_str()), Some("https://app.example"), None] {
        let (status, text) = send(Method::POST, "/api/storage/files:y", json, origin, value).await;
        assert_eq!(status, 200, "{origin:?}: {text}");
    }
    let (status, _) = send(Method::GET, "/api/storage/keys", None, attacker, "").await;
    assert_eq!(status, 403);
}

/// Sends a request head announcing a `Content-Length` of 512 KiB, then only a few bytes of body,
/// and keeps the connection open; returns the answer's status line and body, or `None` when no
/// answer came within 5 s (the server waited for the rest of the body).
async fn answer_to_a_partial_upload(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &str,
) -> Option<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{headers}\r\n{{\"ops\": [",
        512 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Read until the answer's body is complete (its head says how long it is); the connection
    // stays open from our side, as a slow sender's would.
    let read = async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            received.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length").then(|| value.trim())
                    })
                    .and_then(|value| value.parse::<usize>().ok());
                if n == 0 || length.is_some_and(|length| body.len() >= length) {
                    return (head.lines().next().unwrap_or_default().to_owned(), body.to_owned());
                }
            } else if n == 0 {
                return (text, String::new());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.ok()
}

/// Issue 11 item 3: `/api/storage/import` read the whole body (up to 32 MiB) before checking the
/// token, so anonymous uploads filled the server's memory and slow ones held a connection for the
/// 10x bulk timeout. Every route that needs a token now answers 401 before reading any body.
async fn uploads_without_a_valid_token_are_refused_before_their_body_arrives(backend: Backend) {
    // A request timeout far beyond the 5 s the test waits: a prompt 401 is not a timeout.
    let server =
        TestServer::start_with(&backend, |c| c.limits.request_timeout = Duration::from_secs(120))
            .await;
    let wrong = "Authorization: Bearer not-a-token\r\n";
    for path in ["/api/storage/import", "/v1/import", "/v1/push", "/api/storage/files:x"] {
        let method = if path == "/api/storage/files:x" { "PUT" } else { "POST" };
        for headers in ["", wrong] {
            let answer = answer_to_a_partial_upload(&server, method, path, headers).await;
            let (status, body) = answer.unwrap_or_else(|| {
                panic!("{method} {path} ({headers:?}): no answer before the body was sent")
            });
            assert!(status.contains(" 401 "), "{method} {path} ({headers:?}): {status}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["code"], "unauthorized", "{method} {path}");
        }
    }

    // With a token, an import still works.
    let alice = server.user("importer").await;
    let (status, body) = server
        .post("/api/storage/import", &alice, json!({"notes:a": {"text": "one"}, "b": 2}))
        .await;
    assert_eq!((status.as_u16(), &body["imported"]), (200, &json!(2)), "{body}");
    let items = json!({"items": [{"collection": "c", "id": "x", "value": 1}]});
    let (status, body) = server.post("/v1/import", &alice, items).await;
    assert_eq!((status.as_u16(), &body["imported"]), (200, &json!(1)), "{body}");

    // Anonymous CodeForge mode still takes requests without a token (but not a wrong token).
    let name = crate::harness::unique("anonymous");
    let anonymous = TestServer::start_with(&backend, move |c| {
        c.codeforge_anonymous_user = Some(name);
        c.limits.request_timeout = Duration::from_secs(120);
    })
    .await;
    let (status, body) = anonymous
        .call(
            reqwest::Method::POST,
            "/api/storage/import",
            None,
            Some(json!({"notes:a": {"text": "one"}})),
        )
        .await;
    assert_eq!((status.as_u16(), &body["imported"]), (200, &json!(1)), "{body}");
    let (status, body) =
        anonymous.call(reqwest::Method::GET, "/api/storage/keys", None, None).await;
    assert_eq!((status.as_u16(), &body["keys"]), (200, &json!(["notes:a"])), "{body}");
    let answer = answer_to_a_partial_upload(&anonymous, "POST", "/api/storage/import", wrong).await;
    let (status, _) = answer.expect("a wrong token is refused before the body arrives");
    assert!(status.contains(" 401 "), "{status}");
}

/// Random tokens were answered 401 as fast as they came (~8,400/s from one client), each one a
/// database lookup. Failed authentications are now charged to the client's address: past its
/// budget, 429 with `Retry-After` and no lookup. A valid user's requests (token cached) are not
/// charged, so the users behind the same address keep working — all test clients share
/// 127.0.0.1, which is exactly that case.
async fn failed_authentications_from_one_address_are_cut_to_429_while_its_valid_users_keep_working(
    backend: Backend,
) {
    const BURST: u32 = 10;
    let server = TestServer::start_with(&backend, |c| {
        c.limits.anonymous_rate_limit_per_second = 0.5;
        c.limits.anonymous_rate_limit_burst = BURST;
    })
    .await;
    let alice = server.user("address").await;
    // Alice's first request looks her token up (charged once), then it is cached.
    let (status, body) = server.get("/v1/stats", &alice).await;
    assert_eq!(status.as_u16(), 200, "{body}");

    let (mut unauthorized, mut limited) = (0, 0);
    for n in 0..60 {
        let token = format!("random-token-{n}");
        let request = server.http.get(server.url("/v1/pull?since=0"));
        // Every third request sends no token at all: charged the same.
        let request = if n % 3 == 0 { request } else { request.bearer_auth(&token) };
        let response = request.send().await.unwrap();
        match response.status().as_u16() {
            401 => unauthorized += 1,
            429 => {
                limited += 1;
                let retry_after: u64 =
                    response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=3).contains(&retry_after), "Retry-After: {retry_after}");
                let error: serde_json::Value = response.json().await.unwrap();
                assert_eq!(error["code"], "rate_limited", "{error}");
            }
            other => panic!("request {n}: {other}"),
        }
        if n % 5 == 0 {
            let (status, body) = server.get("/v1/pull?since=0", &alice).await;
            assert_eq!(status.as_u16(), 200, "alice refused after {n} random tokens: {body}");
        }
    }
    // The burst (less alice's lookup) plus what refills in the test's few seconds.
    assert!(unauthorized < BURST + 5, "{unauthorized} answered 401, {limited} 429");
    assert!(limited >= 45, "{unauthorized} answered 401, {limited} 429");

    // The event stream and the CodeForge API are charged the same; alice still pushes.
    let response =
        server.http.get(server.url("/v1/events?access_token=random")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let (status, _) =
        server.call(reqwest::Method::GET, "/api/storage/keys", Some("random"), None).await;
    assert_eq!(status.as_u16(), 429);
    server.push(&alice, json!([put_op("still", "c", "x", json!(1), None)])).await;
    let (status, _) = server.call(reqwest::Method::GET, "/health", None, None).await;
    assert_eq!(status.as_u16(), 200, "/health needs no token and is not charged");
}
