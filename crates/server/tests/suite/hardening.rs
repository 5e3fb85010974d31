//! Hardening against hostile clients (issue 11): answers and stored state stay bounded, and odd
//! input is answered per op instead of being dropped or failing the request.

use serde_json::json;

use crate::harness::{put_op, Backend, TestServer};

backend_tests!(conflicts_with_one_large_record_answer_it_once_and_remember_no_values,);

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

    // Remembered answers hold no values.
    let remembered = server.remembered_answers(&name).await;
    assert_eq!(remembered.len(), OPS + 1);
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
