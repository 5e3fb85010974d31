//! The `persist-app` binary: the workspace editor, built for the browser by Trunk.

fn main() {
    #[cfg(target_arch = "wasm32")]
    persist_app::run();
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("persist-app runs in the browser: build it with `trunk build` or `make run`");
}
