//! What a user does with `make run`: open the served app, edit, reload, find the edit again.

use std::time::Duration;

use persist_e2e::{Browser, Server};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_app_loads_saves_edits_and_keeps_them_across_a_reload() {
    let server = Server::start().await;
    let url = format!("{}/", server.url());

    let health: Value = reqwest::get(format!("{}/health", server.url()))
        .await
        .expect("health")
        .json()
        .await
        .expect("health json");
    assert_eq!(health["status"], "ok", "{health}");

    let browser = Browser::start().await;
    browser.goto(&url).await;
    browser
        .wait_for_text(
            &["Workspace editor", "README.md", "All changes saved"],
            Duration::from_secs(20),
        )
        .await;

    // Type into the file's content, then reload at once (inside the 300 ms debounce): leaving
    // the page must flush the change.
    browser.type_into("textarea", "\nTyped by the end-to-end test.").await;
    browser.refresh().await;
    browser.wait_for_text(&["README.md", "All changes saved"], Duration::from_secs(20)).await;
    let content = browser.run("return document.querySelector('textarea').value", json!([])).await;
    assert!(
        content.as_str().unwrap_or_default().ends_with("Typed by the end-to-end test."),
        "the edit was lost across the reload: {content}"
    );

    drop(browser);
    server.running.shutdown().await.expect("shutdown");
}
