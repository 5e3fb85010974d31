//! What the README promises of conflicts with `make run` and two browser profiles: the same line
//! of a file edited in both while the server is down is a conflict for the user (not a silent
//! loss); the conflict center shows both versions and resolves it; both browsers converge and the
//! conflict does not come back.
//!
//! With `PERSIST_SCREENSHOTS=<dir>` it also saves the README's `conflicts.png` there
//! (`make screenshots` does).

use std::time::{Duration, Instant};

use persist_e2e::{Browser, Server};
use serde_json::json;

/// The open file's text; empty while no file editor is shown (the conflict page).
const CONTENT: &str = "const e = document.querySelector('textarea'); return e ? e.value : ''";

async fn content(browser: &Browser) -> String {
    browser.run(CONTENT, json!([])).await.as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_line_edited_offline_in_two_browsers_is_resolved_in_the_conflict_center() {
    let server = Server::start().await;
    let url = format!("{}/", server.url());
    let (a, b) = (Browser::start().await, Browser::start().await);
    for browser in [&a, &b] {
        browser.goto(&url).await;
        browser.wait_for_text(&["README.md", "online · synced"], Duration::from_secs(30)).await;
    }

    // Both edit the end of README.md while the server is down.
    let stopped = server.stop().await;
    a.type_into("textarea", "\nWritten in A.").await;
    b.type_into("textarea", "\nWritten in B.").await;
    for browser in [&a, &b] {
        browser.wait_for_text(&["offline · 1 change to sync"], Duration::from_secs(30)).await;
    }
    let server = stopped.start_again().await;

    // Whichever reaches the server second finds the other's version there: same place changed
    // on both sides, so the user decides.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (asked, other, mine, theirs) = loop {
        if a.text().await.contains("1 conflict") {
            break (&a, &b, "Written in A.", "Written in B.");
        }
        if b.text().await.contains("1 conflict") {
            break (&b, &a, "Written in B.", "Written in A.");
        }
        assert!(
            Instant::now() < deadline,
            "no conflict shown; A: {}\nB: {}",
            a.text().await,
            b.text().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Nothing was lost meanwhile: the asked browser still shows its own line, the other its own.
    assert!(content(asked).await.contains(mine));
    assert!(content(other).await.contains(theirs));

    asked.click("#conflicts-link").await;
    asked.wait_for_text(&["README.md", mine, theirs], Duration::from_secs(10)).await;
    if let Ok(dir) = std::env::var("PERSIST_SCREENSHOTS") {
        asked.resize(1280, 900).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let path = std::path::Path::new(&dir).join("conflicts.png");
        std::fs::write(&path, asked.screenshot().await).expect("write the screenshot");
        eprintln!("wrote {}", path.display());
    }
    asked.click("#cc-keep-local").await;
    asked.wait_for_text(&["No conflicts"], Duration::from_secs(10)).await;

    // Both converge on the kept version, and the conflict does not come back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (left, right) = (content(asked).await, content(other).await);
        if left == right && left.contains(mine) && !left.contains(theirs) {
            break;
        }
        assert!(Instant::now() < deadline, "not converged:\n{left}\n---\n{right}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for browser in [asked, other] {
        let text = browser.text().await;
        assert!(!text.contains("1 conflict"), "the conflict came back:\n{text}");
    }
    drop((a, b));
    server.running.shutdown().await.expect("shutdown");
}
