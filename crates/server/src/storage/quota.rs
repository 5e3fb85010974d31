//! Per-user quotas: most live records and most bytes of live values per namespace.
//!
//! Usage is kept in the namespace's row (`namespaces.live_records`, `namespaces.live_bytes`),
//! read when a write starts and stored in the same transaction, so a write is checked against
//! the usage every earlier write left (writes to one namespace are serialised by the SQLite writer
//! thread and by PostgreSQL's lock on the namespace row): concurrent writes cannot overshoot.
//! Tombstones count for nothing; a value counts its JSON text as stored (the `size` column).

/// A namespace's usage: its live records (tombstones not counted) and the bytes of their values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
}

impl Usage {
    /// The usage after one item goes from `old` to `new`: each the size of a live value, or
    /// `None` for no row or a tombstone.
    pub(crate) fn replace(self, old: Option<u64>, new: Option<u64>) -> Usage {
        let mut usage = self;
        if let Some(size) = old {
            usage.records = usage.records.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(size);
        }
        if let Some(size) = new {
            usage.records = usage.records.saturating_add(1);
            usage.bytes = usage.bytes.saturating_add(size);
        }
        usage
    }
}

/// The quotas of every user; `0` = no quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) max_records: u64,
    pub(crate) max_bytes: u64,
}

impl Quota {
    /// Whether a write may take a namespace from `before` to `after`: refused only when it grows
    /// a usage past its quota, so deletes and writes that do not grow usage always pass (a user
    /// over quota, e.g. after the quota was lowered, can still delete and shrink values).
    ///
    /// # Errors
    /// Why the write is refused, for the error message.
    pub(crate) fn check(self, before: Usage, after: Usage) -> Result<(), String> {
        if self.max_records != 0
            && after.records > before.records
            && after.records > self.max_records
        {
            return Err(format!(
                "quota exceeded: this write would make {} live records, more than the {} allowed \
                 per user; delete some first",
                after.records, self.max_records
            ));
        }
        if self.max_bytes != 0 && after.bytes > before.bytes && after.bytes > self.max_bytes {
            return Err(format!(
                "quota exceeded: this write would store {} bytes of values, more than the {} \
                 allowed per user; delete some first",
                after.bytes, self.max_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota { max_records: 2, max_bytes: 10 };

    fn usage(records: u64, bytes: u64) -> Usage {
        Usage { records, bytes }
    }

    #[test]
    fn replace_counts_live_values_only() {
        assert_eq!(usage(0, 0).replace(None, Some(4)), usage(1, 4));
        assert_eq!(usage(1, 4).replace(Some(4), Some(6)), usage(1, 6));
        assert_eq!(usage(1, 6).replace(Some(6), None), usage(0, 0));
        assert_eq!(usage(0, 0).replace(None, None), usage(0, 0));
    }

    #[test]
    fn growth_past_a_quota_is_refused() {
        assert!(QUOTA.check(usage(2, 5), usage(2, 10)).is_ok());
        assert!(QUOTA.check(usage(2, 5), usage(3, 6)).unwrap_err().contains("live records"));
        assert!(QUOTA.check(usage(2, 5), usage(2, 11)).unwrap_err().contains("bytes"));
    }

    #[test]
    fn shrinking_or_zero_quota_always_passes() {
        assert!(QUOTA.check(usage(5, 50), usage(4, 40)).is_ok());
        assert!(QUOTA.check(usage(5, 50), usage(5, 50)).is_ok());
        assert!(Quota::default().check(usage(0, 0), usage(u64::MAX, u64::MAX)).is_ok());
    }
}
