//! Large mutations (a big import, the clear of a big namespace), applied one bounded slice per
//! writer turn so that they cannot hold the single writer thread for seconds (issue 11, writer
//! fairness).
//!
//! The writer thread applies every queued job in one transaction per turn. A 32 MiB import applied
//! whole kept every other user's push waiting behind it for its whole duration (1.5 s measured).
//! Here such a job is a [`Bulk`]: each turn runs one slice of it — at most [`SLICE_MAX_ROWS`] rows
//! and about [`SLICE_BUDGET`] of work, whichever comes first — and commits it with the turn, so the
//! jobs that arrived meanwhile are served in the very next turn.
//!
//! An upsert is sliced in two phases. First its items' current sizes are read (nothing written),
//! so that the quota is checked against the whole import before its first row is written (a 507
//! still writes nothing); then the rows are written, each slice storing the namespace's head and
//! usage with its rows, so the counters match what is committed even if the server dies midway.
//! Both phases rely on the writer deferring every other write to the same namespace until the bulk
//! job ends: nothing else changes the namespace in between, so the sizes read first are still the
//! sizes replaced later, and two concurrent imports of one user cannot both pass the quota check
//! against the same usage.
//!
//! What slicing gives up: a large mutation no longer commits as a whole. If the server dies
//! midway, the slices already committed stay written (an import is a set of idempotent upserts, so
//! resending it finishes the job).

use std::time::{Duration, Instant};

use persist_protocol::Revision;
use rusqlite::{params, Connection, OptionalExtension};

use super::writes::{namespace, store_namespace, write_row};
use crate::storage::{
    revision_from_db, revision_to_db, Applied, Mutation, Quota, StorageError, UpsertRow, Usage,
    WriteOutcome,
};

/// Work one turn gives to the bulk jobs (together): the clock is read only every
/// [`CHECK_EVERY_ROWS`] rows, so a slice overruns this by at most one such step. Far below the
/// 100 ms another user's write may wait, in debug builds too.
pub(super) const SLICE_BUDGET: Duration = Duration::from_millis(25);
/// Most rows one bulk job writes (or measures) in one turn, whatever the clock says.
pub(super) const SLICE_MAX_ROWS: usize = 16_384;
/// Rows between two readings of the clock.
const CHECK_EVERY_ROWS: usize = 256;
/// Bytes of values between two readings of the clock (big values take long to write).
const CHECK_EVERY_BYTES: usize = 1024 * 1024;
/// Mutations up to this many rows (upserts) or live records (clears) take the plain path: one
/// savepoint in one turn. Pushes (at most 1,000 ops) always do.
const LARGE_ROWS: usize = 1024;
/// Upserts with more value bytes than this are sliced whatever their row count.
const LARGE_BYTES: usize = 1024 * 1024;

/// Whether `mutation` is large enough to be applied in slices.
///
/// # Errors
/// The namespace's row cannot be read (for a clear, its live record count decides).
pub(super) fn is_large(
    conn: &Connection,
    ns: &str,
    mutation: &Mutation,
) -> Result<bool, StorageError> {
    Ok(match mutation {
        Mutation::Upsert(rows) => {
            rows.len() > LARGE_ROWS
                || rows.iter().map(|row| row.value_json.len()).sum::<usize>() > LARGE_BYTES
        }
        Mutation::Clear => namespace(conn, ns)?.1.records > LARGE_ROWS as u64,
        Mutation::Push(_) | Mutation::Delete { .. } => false,
    })
}

/// When the current slice must end: the turn's deadline or the slice's row cap.
#[derive(Debug)]
pub(super) struct Budget {
    deadline: Instant,
    rows_left: usize,
    rows_unchecked: usize,
    bytes_unchecked: usize,
}

impl Budget {
    /// A slice of at most [`SLICE_MAX_ROWS`] rows that ends at `deadline`.
    pub(super) fn until(deadline: Instant) -> Self {
        Budget { deadline, rows_left: SLICE_MAX_ROWS, rows_unchecked: 0, bytes_unchecked: 0 }
    }

    /// Counts one row of `bytes`; false when the slice must end after it. The first
    /// [`CHECK_EVERY_ROWS`] rows always pass, so every bulk job progresses in every turn even when
    /// an earlier one used up the deadline.
    fn take(&mut self, bytes: usize) -> bool {
        self.rows_left = self.rows_left.saturating_sub(1);
        self.rows_unchecked += 1;
        self.bytes_unchecked += bytes;
        if self.rows_left == 0 {
            return false;
        }
        if self.rows_unchecked >= CHECK_EVERY_ROWS || self.bytes_unchecked >= CHECK_EVERY_BYTES {
            self.rows_unchecked = 0;
            self.bytes_unchecked = 0;
            return Instant::now() < self.deadline;
        }
        true
    }
}

/// What one slice left.
#[derive(Debug)]
pub(super) enum Step {
    /// More slices follow; the namespace's head after this one when it wrote something (for the
    /// namespace's event streams).
    More(Option<Revision>),
    /// The job is done: the answer for its caller.
    Done(WriteOutcome),
}

/// A large upsert or clear of one namespace, in progress.
#[derive(Debug)]
pub(super) struct Bulk {
    work: Work,
}

#[derive(Debug)]
enum Work {
    /// Reading each row's current live size, for the quota check; nothing written yet.
    Measure { rows: Vec<UpsertRow>, old: Vec<Option<u64>> },
    /// Writing rows `next..`; `old[i]` is the live size row `i` replaces.
    Write { rows: Vec<UpsertRow>, old: Vec<Option<u64>>, next: usize },
    /// Tombstoning the live records with `after < revision <= upto`, oldest first.
    Clear { upto: Revision, after: Revision, cleared: u64 },
}

impl Bulk {
    /// Starts a bulk job for `mutation` (an upsert or a clear, see [`is_large`]) of `ns`; the
    /// caller defers every other write to `ns` until [`Bulk::step`] says it is done or fails.
    ///
    /// # Errors
    /// The mutation is neither an upsert nor a clear, or the namespace cannot be read.
    pub(super) fn start(
        conn: &Connection,
        ns: &str,
        mutation: Mutation,
    ) -> Result<Self, StorageError> {
        let work = match mutation {
            Mutation::Upsert(rows) => Work::Measure { old: Vec::with_capacity(rows.len()), rows },
            // Records written from now on are not this clear's: it ends at today's head.
            Mutation::Clear => Work::Clear { upto: namespace(conn, ns)?.0, after: 0, cleared: 0 },
            other => {
                return Err(StorageError::Database(format!("not a bulk mutation: {other:?}")));
            }
        };
        Ok(Bulk { work })
    }

    /// Applies one slice within `budget` (the caller holds the transaction and a savepoint, so a
    /// failed slice rolls back alone and the earlier ones stay).
    ///
    /// # Errors
    /// `QuotaExceeded` when the measured upsert would grow the namespace past its quota (nothing
    /// was written), or a database error.
    pub(super) fn step(
        &mut self,
        conn: &Connection,
        ns: &str,
        quota: Quota,
        now: i64,
        budget: &mut Budget,
    ) -> Result<Step, StorageError> {
        if let Work::Measure { rows, old } = &mut self.work {
            if !measure(conn, ns, rows, old, budget)? {
                return Ok(Step::More(None));
            }
            let (_, before) = namespace(conn, ns)?;
            let after = rows.iter().zip(old.iter()).fold(before, |usage, (row, old)| {
                usage.replace(*old, Some(row.value_json.len() as u64))
            });
            quota.check(before, after).map_err(StorageError::QuotaExceeded)?;
            let (rows, old) = (std::mem::take(rows), std::mem::take(old));
            self.work = Work::Write { rows, old, next: 0 };
        }
        match &mut self.work {
            Work::Measure { .. } => unreachable!("measured above"),
            Work::Write { rows, old, next } => {
                let (mut head, mut usage) = namespace(conn, ns)?;
                while *next < rows.len() {
                    let row = &rows[*next];
                    head += 1;
                    let value = Some(row.value_json.as_str());
                    write_row(conn, ns, &row.collection, &row.id, value, head, now, None)?;
                    usage = usage.replace(old[*next], Some(row.value_json.len() as u64));
                    *next += 1;
                    if !budget.take(row.value_json.len()) {
                        break;
                    }
                }
                store_namespace(conn, ns, head, usage)?;
                if *next < rows.len() {
                    return Ok(Step::More(Some(head)));
                }
                let applied = Applied::Upsert(rows.len() as u64);
                Ok(Step::Done(WriteOutcome { applied, head }))
            }
            Work::Clear { upto, after, cleared } => {
                let (mut head, mut usage) = namespace(conn, ns)?;
                let done = clear_slice(
                    conn, ns, *upto, after, cleared, &mut head, &mut usage, now, budget,
                )?;
                if done {
                    // As a whole clear always did: nothing live is left, whatever the counter said.
                    usage = Usage::default();
                }
                store_namespace(conn, ns, head, usage)?;
                if !done {
                    return Ok(Step::More(Some(head)));
                }
                Ok(Step::Done(WriteOutcome { applied: Applied::Clear(*cleared), head }))
            }
        }
    }
}

/// Reads the live size of rows `old.len()..` into `old`; true once every row is measured.
fn measure(
    conn: &Connection,
    ns: &str,
    rows: &[UpsertRow],
    old: &mut Vec<Option<u64>>,
    budget: &mut Budget,
) -> Result<bool, StorageError> {
    let mut live_size = conn.prepare_cached(
        "SELECT size FROM records WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND deleted = 0",
    )?;
    while let Some(row) = rows.get(old.len()) {
        let size: Option<i64> =
            live_size.query_row(params![ns, row.collection, row.id], |r| r.get(0)).optional()?;
        old.push(size.map(revision_from_db));
        if !budget.take(0) {
            break;
        }
    }
    Ok(old.len() == rows.len())
}

/// Tombstones live records with `after < revision <= upto`, oldest first, until the budget ends;
/// true when none is left.
#[allow(clippy::too_many_arguments)]
fn clear_slice(
    conn: &Connection,
    ns: &str,
    upto: Revision,
    after: &mut Revision,
    cleared: &mut u64,
    head: &mut Revision,
    usage: &mut Usage,
    now: i64,
    budget: &mut Budget,
) -> Result<bool, StorageError> {
    let mut next_live = conn.prepare_cached(
        "SELECT collection, id, size, revision FROM records \
         WHERE ns = ?1 AND revision > ?2 AND revision <= ?3 AND deleted = 0 \
         ORDER BY revision LIMIT ?4",
    )?;
    loop {
        let chunk: Vec<(String, String, i64, i64)> = next_live
            .query_map(
                params![ns, revision_to_db(*after), revision_to_db(upto), CHECK_EVERY_ROWS as i64],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )?
            .collect::<Result<_, _>>()?;
        if chunk.is_empty() {
            return Ok(true);
        }
        for (collection, id, size, revision) in chunk {
            *head += 1;
            write_row(conn, ns, &collection, &id, None, *head, now, None)?;
            *usage = usage.replace(Some(revision_from_db(size)), None);
            *after = revision_from_db(revision);
            *cleared += 1;
            if !budget.take(0) {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_ends_at_its_row_cap_before_its_deadline() {
        let mut budget = Budget::until(Instant::now() + Duration::from_secs(3600));
        let taken = (0..SLICE_MAX_ROWS * 2).take_while(|_| budget.take(0)).count();
        assert_eq!(taken + 1, SLICE_MAX_ROWS);
    }

    #[test]
    fn a_slice_past_its_deadline_still_makes_one_step_of_progress() {
        let mut budget = Budget::until(Instant::now());
        let taken = (0..SLICE_MAX_ROWS).take_while(|_| budget.take(0)).count();
        assert_eq!(taken + 1, CHECK_EVERY_ROWS);
    }

    #[test]
    fn big_values_make_the_clock_be_read_sooner() {
        let mut budget = Budget::until(Instant::now());
        assert!(!budget.take(CHECK_EVERY_BYTES));
    }
}
