//! PostgreSQL migrations. Several instances may start at once: an advisory lock serialises them.

use tokio_postgres::Client;

use crate::storage::StorageError;

/// Arbitrary constant naming the migration lock.
const MIGRATION_LOCK: i64 = 0x0070_6572_7369_7374;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE namespaces (
    ns TEXT PRIMARY KEY,
    revision BIGINT NOT NULL
);
CREATE TABLE records (
    ns TEXT NOT NULL,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    value TEXT,
    revision BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL,
    hlc TEXT,
    size BIGINT NOT NULL,
    PRIMARY KEY (ns, collection, id)
);
CREATE UNIQUE INDEX records_by_revision ON records (ns, revision);
CREATE TABLE ops (
    ns TEXT NOT NULL,
    op_id TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (ns, op_id)
);
CREATE INDEX ops_by_age ON ops (created_at);
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
"#,
    // TRUE for the token of `serve --dev`, which only a server in dev mode accepts.
    "ALTER TABLE tokens ADD COLUMN dev BOOLEAN NOT NULL DEFAULT FALSE;",
    // Per-user quotas: each namespace's live records and the bytes of their values, kept up to
    // date by every write in its transaction; computed once here for existing data.
    r#"
ALTER TABLE namespaces ADD COLUMN live_records BIGINT NOT NULL DEFAULT 0;
ALTER TABLE namespaces ADD COLUMN live_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE namespaces n SET live_records = u.records, live_bytes = u.bytes
FROM (SELECT ns, COUNT(*) AS records, COALESCE(SUM(size), 0) AS bytes
      FROM records WHERE NOT deleted GROUP BY ns) u
WHERE n.ns = u.ns;
"#,
];

pub(super) async fn migrate(client: &mut Client) -> Result<(), StorageError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = run_pending(client).await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    result
}

async fn run_pending(client: &mut Client) -> Result<(), StorageError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS persist_migrations (version INTEGER PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    let applied: i64 =
        client.query_one("SELECT COUNT(*) FROM persist_migrations", &[]).await?.get(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let version = index as i32 + 1;
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO persist_migrations (version) VALUES ($1)", &[&version]).await?;
        tx.commit().await?;
        tracing::info!(version, "postgres migration applied");
    }
    Ok(())
}
