//! The server's test suite, over real HTTP on loopback. Every test in a `backend_tests!` list runs
//! twice: against SQLite and against PostgreSQL (`PERSIST_TEST_POSTGRES_URL`, set by
//! `scripts/server-test.sh`; without it the PostgreSQL half fails unless `PERSIST_SKIP_POSTGRES=1`).

/// Instantiates each listed `async fn name(backend: Backend)` once per backend.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::harness::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = crate::harness::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}

mod harness;

mod bounded_reads;
mod codeforge_api;
mod connections;
mod durability;
mod events;
mod fairness;
mod hardening;
mod operations;
mod quotas;
mod security;
mod sync_protocol;
