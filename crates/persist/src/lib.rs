//! Local-first persistence and sync for yewdux stores.
#![deny(missing_docs)]
