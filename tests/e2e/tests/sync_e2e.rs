//! What the README promises of `make run` with two browser profiles: an edit in one appears in
//! the other without a reload; with the server stopped, edits are kept and counted, and they
//! drain by themselves when it is back.

use std::time::{Duration, Instant};

use persist_e2e::{Browser, Server};
use serde_json::json;

const CONTENT: &str = "return document.querySelector('textarea').value";

async fn wait_for_content(browser: &Browser, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let content = browser.run(CONTENT, json!([])).await;
        if content.as_str().unwrap_or_default().contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "{needle:?} never appeared; the content is {content}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_in_one_browser_appears_in_another_and_offline_edits_drain_when_the_server_is_back()
{
    let server = Server::start().await;
    let url = format!("{}/", server.url());
    // Two ChromeDriver sessions: two browser profiles, two IndexedDBs.
    let (a, b) = (Browser::start().await, Browser::start().await);
    for browser in [&a, &b] {
        browser.goto(&url).await;
        browser.wait_for_text(&["README.md", "online · synced"], Duration::from_secs(30)).await;
    }

    a.type_into("textarea", "\nTyped in A.").await;
    wait_for_content(&b, "Typed in A.", Duration::from_secs(10)).await;

    let stopped = server.stop().await;
    a.type_into("textarea", "\nTyped while the server was down.").await;
    // The header says so, and counts the edit waiting.
    a.wait_for_text(&["offline · 1 change to sync"], Duration::from_secs(30)).await;

    let server = stopped.start_again().await;
    // Back: the health check notices within its backoff (≤ 60 s; seconds here) and drains.
    wait_for_content(&b, "Typed while the server was down.", Duration::from_secs(60)).await;
    a.wait_for_text(&["online · synced"], Duration::from_secs(10)).await;

    drop((a, b));
    server.running.shutdown().await.expect("shutdown");
}
