//! SQLite connection settings and migrations.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::storage::StorageError;

/// Migrations, applied in order; `PRAGMA user_version` counts the applied ones.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE namespaces (
    ns TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE records (
    ns TEXT NOT NULL,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    value TEXT,
    revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    hlc TEXT,
    size INTEGER NOT NULL,
    PRIMARY KEY (ns, collection, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX records_by_revision ON records (ns, revision);
CREATE TABLE ops (
    ns TEXT NOT NULL,
    op_id TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (ns, op_id)
) WITHOUT ROWID;
CREATE INDEX ops_by_age ON ops (created_at);
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 1 for the token of `serve --dev`, which only a server in dev mode accepts.
    "ALTER TABLE tokens ADD COLUMN dev INTEGER NOT NULL DEFAULT 0;",
    // Per-user quotas: each namespace's live records and the bytes of their values, kept up to
    // date by every write in its transaction; computed once here for existing data.
    r#"
ALTER TABLE namespaces ADD COLUMN live_records INTEGER NOT NULL DEFAULT 0;
ALTER TABLE namespaces ADD COLUMN live_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE namespaces SET
    live_records = (SELECT COUNT(*) FROM records r WHERE r.ns = namespaces.ns AND r.deleted = 0),
    live_bytes = (SELECT COALESCE(SUM(size), 0) FROM records r
                  WHERE r.ns = namespaces.ns AND r.deleted = 0);
"#,
];

/// Opens the writer connection: WAL, `synchronous=FULL` (a commit is on disk before it is
/// acknowledged), then runs the pending migrations.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StorageError> {
    create_private(path)?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Database(format!("journal_mode is {mode}, not wal")));
    }
    // No automatic checkpoints on the writer: the checkpointer thread does them.
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA cache_size=-65536; \
         PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=0;",
    )?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Creates the database file (and its missing directories) readable by the owner only (file
/// 0600, directories 0700) before SQLite opens it; SQLite gives its `-wal` and `-shm` files the
/// database file's mode. An existing file is left as it is.
fn create_private(path: &Path) -> Result<(), StorageError> {
    let unavailable = |what: &Path, e: std::io::Error| {
        StorageError::Unavailable(format!("cannot create {}: {e}", what.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(|e| unavailable(parent, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unavailable(path, e)),
    }
}

/// Opens a read connection (WAL readers never block the writer).
pub(super) fn open_reader(path: &Path) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA query_only=1; PRAGMA cache_size=-16384;")?;
    Ok(conn)
}

/// Opens the connection that runs passive checkpoints (`synchronous=FULL`: the database file is
/// fsynced before the WAL is reused).
pub(super) fn open_checkpointer(path: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA synchronous=FULL;")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version={}", index + 1))?;
        tx.commit()?;
        tracing::info!(version = index + 1, "sqlite migration applied");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn new_database_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("persist.db");
        drop(open_writer(&path).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let wal = path.with_file_name("persist.db-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
    }

    #[test]
    fn the_quota_migration_counts_existing_live_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&MIGRATIONS[..2].join("\n")).unwrap();
            conn.execute_batch(
                "PRAGMA user_version=2; \
                 INSERT INTO namespaces (ns, revision) VALUES ('a', 3), ('b', 1), ('empty', 0); \
                 INSERT INTO records VALUES ('a', 'c', '1', '\"xy\"', 1, 0, 0, NULL, 4), \
                   ('a', 'c', '2', '12', 2, 0, 0, NULL, 2), ('a', 'c', '3', NULL, 3, 1, 0, NULL, 0), \
                   ('b', 'c', '1', NULL, 1, 1, 0, NULL, 0);",
            )
            .unwrap();
        }
        let conn = open_writer(&path).unwrap();
        let usage = |ns: &str| -> (i64, i64) {
            conn.query_row(
                "SELECT live_records, live_bytes FROM namespaces WHERE ns = ?1",
                [ns],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!((usage("a"), usage("b"), usage("empty")), ((2, 6), (0, 0), (0, 0)));
    }

    #[test]
    fn the_writer_is_wal_with_full_sync_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/db.sqlite3");
        drop(open_writer(&path).unwrap());
        let conn = open_writer(&path).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), sync, version), ("wal", 2, MIGRATIONS.len()));
    }
}
