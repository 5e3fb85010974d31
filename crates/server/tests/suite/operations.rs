//! Operations: metrics, static files, development mode, graceful shutdown, the command line.

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{put_op, test_config, Backend, TestServer};

backend_tests!(
    metrics_count_requests_ops_and_conflicts,
    metrics_exposition_parses_and_counters_move_after_a_push,
    static_files_fall_back_to_the_app_but_api_paths_do_not,
    dev_mode_hands_out_a_token_that_ends_with_its_server,
    graceful_shutdown_loses_no_acknowledged_push,
);

async fn metrics_count_requests_ops_and_conflicts(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    server
        .push(
            &alice,
            json!([put_op("1", "c", "a", json!(1), None), put_op("2", "c", "b", json!(1), None)]),
        )
        .await;
    server.push(&alice, json!([put_op("3", "c", "a", json!(2), Some(7))])).await;
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("persist_ops_pushed_total{outcome=\"applied\"} 2"), "{text}");
    assert!(text.contains("persist_conflicts_total 1"), "{text}");
    assert!(text.contains(
        "persist_http_requests_total{method=\"POST\",route=\"/v1/push\",status=\"200\"} 2"
    ));
    assert!(text.contains("persist_http_request_duration_seconds_count{route=\"/v1/push\"} 2"));
    assert!(text.ends_with("# EOF\n"), "{text}");
    // With --metrics-token, the token is required.
    let guarded =
        TestServer::start_with(&backend, |c| c.metrics_token = Some("m-secret".into())).await;
    let (status, _) = guarded.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response =
        guarded.http.get(guarded.url("/metrics")).bearer_auth("m-secret").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Fetches `/metrics`, checks it is well-formed OpenMetrics text (content type, a `# TYPE` for
/// every sample's family, `# EOF` last, numeric values) and returns sample → value.
async fn scrape(server: &TestServer) -> std::collections::HashMap<String, f64> {
    let response = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text = response.text().await.unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.pop(), Some("# EOF"), "{text}");
    let mut families: Vec<(String, String)> = Vec::new();
    let mut samples = std::collections::HashMap::new();
    for line in lines {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let name = series.split('{').next().unwrap();
        let (family, kind) = families.last().unwrap_or_else(|| panic!("no # TYPE for {line:?}"));
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total"],
            "gauge" => &[""],
            "histogram" => &["_bucket", "_sum", "_count"],
            other => panic!("unexpected type {other}"),
        };
        assert!(
            suffixes.iter().any(|suffix| name == format!("{family}{suffix}")),
            "{name} is not in family {family} ({kind})"
        );
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(samples.insert(series.to_owned(), value).is_none(), "duplicate {series}");
    }
    samples
}

async fn metrics_exposition_parses_and_counters_move_after_a_push(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let value = |samples: &std::collections::HashMap<String, f64>, series: &str| {
        samples.get(series).copied().unwrap_or(0.0)
    };
    let push_requests =
        "persist_http_requests_total{method=\"POST\",route=\"/v1/push\",status=\"200\"}";
    let before = scrape(&server).await;
    assert_eq!(value(&before, "persist_event_streams"), 0.0);
    server
        .push(
            &alice,
            json!([put_op("1", "c", "a", json!(1), None), put_op("2", "c", "b", json!(1), None)]),
        )
        .await;
    server.push(&alice, json!([put_op("3", "c", "a", json!(2), Some(7))])).await;
    let after = scrape(&server).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved("persist_pushes_total"), 2.0);
    assert_eq!(moved("persist_ops_pushed_total{outcome=\"applied\"}"), 2.0);
    assert_eq!(moved("persist_ops_pushed_total{outcome=\"conflict\"}"), 1.0);
    assert_eq!(moved("persist_ops_pushed_total{outcome=\"rejected\"}"), 0.0);
    assert_eq!(moved("persist_conflicts_total"), 1.0);
    assert_eq!(moved(push_requests), 2.0);
    assert_eq!(moved("persist_http_request_duration_seconds_count{route=\"/v1/push\"}"), 2.0);
    assert_eq!(
        value(
            &after,
            "persist_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/v1/push\"}"
        ),
        value(&after, "persist_http_request_duration_seconds_count{route=\"/v1/push\"}")
    );
    // The first scrape itself was counted by the time of the second.
    assert!(
        moved("persist_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}")
            >= 1.0
    );
}

async fn static_files_fall_back_to_the_app_but_api_paths_do_not(backend: Backend) {
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("index.html"), "<html>app</html>").unwrap();
    std::fs::write(app.path().join("app.js"), "console.log(1)").unwrap();
    let dir = app.path().to_path_buf();
    let server = TestServer::start_with(&backend, move |c| c.static_dir = Some(dir)).await;
    let text = |path: &'static str| {
        let request = server.http.get(server.url(path)).send();
        async move {
            let response = request.await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    assert_eq!(text("/").await, (StatusCode::OK, "<html>app</html>".into()));
    assert_eq!(text("/app.js").await, (StatusCode::OK, "console.log(1)".into()));
    assert_eq!(text("/files/some/deep/page").await, (StatusCode::OK, "<html>app</html>".into()));
    let (status, body) = text("/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], "not_found");
    let (status, _) = text("/api/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.call(Method::POST, "/somewhere", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn dev_mode_hands_out_a_token_that_ends_with_its_server(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("dev-token");
    let config = |dir: &std::path::Path| {
        let mut config = test_config(backend.database(dir));
        config.dev = true;
        config.dev_token_file = Some(token_file.clone());
        config
    };
    let data = tempfile::tempdir().unwrap();
    let data_path = data.path().to_path_buf();
    let mut server = TestServer::start_config(config(&data_path), data).await;
    let (status, dev) = server.call(Method::GET, "/dev-config.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dev["user"], "dev");
    let token = dev["token"].as_str().unwrap().to_owned();
    let (status, _) = server.call(Method::GET, "/v1/stats", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    // Loopback origins may call it (e.g. `trunk serve` on another port).
    let response = server
        .http
        .get(server.url("/health"))
        .header("origin", "http://127.0.0.1:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "http://127.0.0.1:8080");
    let dir_keep = server.dir.path().to_path_buf();
    server.stop().await;
    // The next start makes a new token (the stopped server's one ended with it) and keeps it in
    // the token file for tools.
    let again = TestServer::start_config(config(&dir_keep), tempfile::tempdir().unwrap()).await;
    let (_, dev_again) = again.call(Method::GET, "/dev-config.json", None, None).await;
    let fresh = dev_again["token"].as_str().unwrap();
    assert_ne!(fresh, token);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), fresh);
    let (status, _) = again.call(Method::GET, "/v1/stats", Some(fresh), None).await;
    assert_eq!(status, StatusCode::OK);
    // Without --dev there is no such route.
    let plain = TestServer::start(&backend).await;
    let (status, _) = plain.call(Method::GET, "/dev-config.json", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn graceful_shutdown_loses_no_acknowledged_push(backend: Backend) {
    let mut server = TestServer::start(&backend).await;
    let alice = server.user("alice").await;
    let acknowledged: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let (started_tx, mut started) = tokio::sync::mpsc::channel::<()>(64);
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (http, url, token) = (server.http.clone(), server.url("/v1/push"), alice.token.clone());
        let acknowledged = Arc::clone(&acknowledged);
        let started_tx = started_tx.clone();
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("w{writer}-{n}");
                let body = json!({"ops": [put_op(&id, "load", &id, json!(n), None)]});
                let Ok(response) = http.post(&url).bearer_auth(&token).json(&body).send().await
                else {
                    return;
                };
                if response.status() != StatusCode::OK {
                    return;
                }
                let Ok(answer) = response.json::<Value>().await else {
                    return;
                };
                let revision = answer["results"][0]["revision"].as_u64().unwrap();
                acknowledged.lock().unwrap().push((id, revision));
                let _ = started_tx.try_send(());
            }
        }));
    }
    drop(started_tx);
    for _ in 0..20 {
        started.recv().await.unwrap();
    }
    let handle = server.running().shutdown_handle();
    handle.shutdown();
    for writer in writers {
        writer.await.unwrap();
    }
    server.stop().await;
    // Reopen the same database: every acknowledged push is there.
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let mut config = test_config(server.database.clone());
    config.limits.rate_limit_per_second = 0.0;
    let reopened = TestServer::start_config(config, dir).await;
    let records = reopened.pull_all(&alice, 0, 5000).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 20);
    for (id, revision) in acknowledged {
        let record = records.iter().find(|r| r["id"] == id.as_str());
        let record = record.unwrap_or_else(|| panic!("acknowledged {id} was lost"));
        assert_eq!(record["revision"], revision);
    }
}

#[test]
fn help_documents_every_flag() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_persist-server"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--database",
        "--cors-origin",
        "--max-body-bytes",
        "--max-value-bytes",
        "--rate-limit",
        "--anonymous-rate-limit",
        "--anonymous-rate-limit-burst",
        "--request-timeout-secs",
        "--static-dir",
        "--dev",
        "--codeforge-anonymous-user",
        "--metrics-token",
        "PERSIST_DATABASE",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_persist-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("token") && help.contains("serve"), "{help}");
}

#[test]
fn token_commands_create_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("tokens.sqlite3").display().to_string();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_persist-server"))
            .args(args)
            .args(["--database", &database])
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        (output.status.success(), stdout, stderr)
    };
    let (ok, created, _) = run(&["token", "create", "carol"]);
    assert!(ok);
    let token = created.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("pst_"), "{created}");
    assert!(run(&["token", "create", "dave"]).0);

    let (ok, listed, _) = run(&["token", "list", "carol"]);
    assert!(ok);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "a header and carol's token:\n{listed}");
    assert!(lines[1].starts_with("carol "), "{listed}");
    assert!(!listed.contains(&token[4..]), "the token itself is never shown");
    let id = lines[1].split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(id.len(), 12);

    let (ok, _, error) = run(&["token", "revoke", "carol", "--id", "000000000000"]);
    assert!(!ok && error.contains("no token with id 000000000000"), "{error}");
    let (ok, revoked, _) = run(&["token", "revoke", "carol", "--id", &id]);
    assert!(ok && revoked.contains("revoked 1 token"), "{revoked}");
    let (ok, _, error) = run(&["token", "revoke", "carol"]);
    assert!(!ok && error.contains("has no tokens"), "{error}");

    let (ok, everyone, _) = run(&["token", "list"]);
    assert!(ok && everyone.contains("dave") && !everyone.contains("carol"), "{everyone}");

    // A mistyped database is an error, not a new empty one.
    let missing = dir.path().join("typo.sqlite3");
    for command in [&["token", "list"][..], &["token", "revoke", "dave"][..]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_persist-server"))
            .args(command)
            .args(["--database", &missing.display().to_string()])
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(!output.status.success() && stderr.contains("no database at"), "{stderr}");
    }
    assert!(!missing.exists(), "nothing was created");
}
