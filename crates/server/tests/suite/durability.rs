//! kill -9 during a load of pushes: after a restart every acknowledged op is there. Runs the real
//! binary (and its `token create` subcommand).

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{binary_create_token, put_op, spawn_binary, unique, Backend};

backend_tests!(kill_9_during_pushes_loses_no_acknowledged_op);

fn database_arg(backend: &Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => dir.join("persist.sqlite3").display().to_string(),
        Backend::Postgres(url) => url.clone(),
    }
}

async fn kill_9_during_pushes_loses_no_acknowledged_op(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = database_arg(&backend, dir.path());
    let user = unique("crash");
    let token = binary_create_token(&database, &user);
    let (mut child, base) = spawn_binary(&database, |_| {});
    let http = reqwest::Client::new();
    let acknowledged: Arc<Mutex<Vec<(String, Value, u64)>>> = Arc::default();
    let (progress_tx, mut progress) = tokio::sync::mpsc::channel::<()>(1024);
    let mut writers = Vec::new();
    for writer in 0..8 {
        let (http, url, token) = (http.clone(), format!("{base}/v1/push"), token.clone());
        let acknowledged = Arc::clone(&acknowledged);
        let progress_tx = progress_tx.clone();
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let ops: Vec<Value> = (0..10)
                    .map(|j| {
                        let id = format!("w{writer}-{n}-{j}");
                        put_op(&id, "crash", &id, json!({"w": writer, "n": n, "j": j}), None)
                    })
                    .collect();
                let body = json!({ "ops": ops });
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
                let mut acked = acknowledged.lock().unwrap();
                for (op, result) in ops.iter().zip(answer["results"].as_array().unwrap()) {
                    assert_eq!(result["status"], "applied");
                    acked.push((
                        op["id"].as_str().unwrap().to_owned(),
                        op["value"].clone(),
                        result["revision"].as_u64().unwrap(),
                    ));
                }
                drop(acked);
                let _ = progress_tx.try_send(());
            }
        }));
    }
    drop(progress_tx);
    // Kill while the load is running, after a good number of acknowledged pushes.
    for _ in 0..150 {
        progress.recv().await.unwrap();
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 1500);

    let (mut child, base) = spawn_binary(&database, |_| {});
    let mut records = std::collections::HashMap::new();
    let mut since = 0;
    loop {
        let page: Value = http
            .get(format!("{base}/v1/pull?since={since}&limit=5000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for record in page["records"].as_array().unwrap() {
            records.insert(record["id"].as_str().unwrap().to_owned(), record.clone());
        }
        since = page["next_since"].as_u64().unwrap();
        if page["has_more"] == false {
            break;
        }
    }
    for (id, value, revision) in &acknowledged {
        let record = records.get(id).unwrap_or_else(|| panic!("acknowledged op {id} was lost"));
        assert_eq!(&record["value"], value);
        assert_eq!(record["revision"], *revision);
    }
    // The restarted server takes writes again.
    let answer: Value = http
        .post(format!("{base}/v1/push"))
        .bearer_auth(&token)
        .json(&json!({"ops": [put_op("after", "crash", "after", json!(1), None)]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["results"][0]["status"], "applied");
    child.kill().unwrap();
    child.wait().unwrap();
}
