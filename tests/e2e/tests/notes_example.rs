//! The notes example (`crates/persist/examples/notes`, public API only) works in a real browser:
//! a note typed and added is saved and still there after a reload, and the dashboard shows it.

use std::time::Duration;

use persist_e2e::{notes_dist_dir, Browser, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notes_example_keeps_a_note_across_a_reload() {
    let server = Server::serving(notes_dist_dir()).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", server.url())).await;
    browser
        .wait_for_text(&["Notes (0)", "Notes storage", "all saved"], Duration::from_secs(20))
        .await;

    browser.type_into("#draft", "buy oat milk").await;
    browser.click("#add").await;
    browser.wait_for_text(&["Notes (1)", "buy oat milk"], Duration::from_secs(5)).await;
    // Reload at once, inside the debounce: leaving the page writes what is queued.
    browser.refresh().await;
    browser
        .wait_for_text(&["Notes (1)", "buy oat milk", "all saved"], Duration::from_secs(20))
        .await;

    drop(browser);
    server.running.shutdown().await.expect("shutdown");
}
