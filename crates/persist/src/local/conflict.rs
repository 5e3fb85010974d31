//! Conflicts a user decides: the durable [`Conflict`] record (with local, remote and base), the
//! [`Resolution`] that settles one, and the app's own [`Resolver`] for
//! [`ConflictStrategy::Custom`](persist_engine::ConflictStrategy::Custom).
//!
//! A conflict is kept in the store's `__conflicts` (IndexedDB) beside the item's outbox entry:
//! while it is open the item keeps its local value, local edits go on being saved, and the entry
//! is not pushed. A resolution writes the chosen value and re-bases the entry on the server's
//! revision the conflict saw, in one transaction, so the server accepts it and the same conflict
//! cannot come back. A newer server version arriving meanwhile updates the conflict's remote side
//! (it stays open: manual conflicts are never decided automatically).

use std::fmt;
use std::rc::Rc;

use persist_protocol::{Hlc, Revision};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A conflict waiting for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The item's collection.
    pub collection: String,
    /// The item's id.
    pub id: String,
    /// The last version both sides agreed on (`None`: unknown, or the item did not exist).
    pub base: Option<Value>,
    /// This device's version (`None`: deleted here). Stored as it was when the conflict was
    /// found; [`Persistence::conflicts`](crate::Persistence::conflicts) fills in the item's
    /// current value (local edits go on while the conflict is open), which is what "keep local"
    /// keeps.
    pub local: Option<Value>,
    /// When this device's change was made.
    pub local_hlc: Hlc,
    /// The server's version (`None`: deleted there).
    pub remote: Option<Value>,
    /// The server's revision of that version: a resolution is pushed on top of it.
    pub remote_revision: Revision,
    /// When the server's version was made, if it was stamped.
    pub remote_hlc: Option<Hlc>,
    /// The fields changed on both sides that could not be merged ("." joined paths; "" for the
    /// whole value). Empty when no merge was tried.
    #[serde(default)]
    pub fields: Vec<String>,
}

impl Conflict {
    /// The item's key, `(collection, id)`.
    pub fn key(&self) -> (&str, &str) {
        (&self.collection, &self.id)
    }
}

/// How a conflict is settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// Keep this device's current value; it is pushed on top of the server's version.
    KeepLocal,
    /// Take the server's version; the local change is dropped.
    KeepRemote,
    /// Use this value (merged, or edited by hand; `None` deletes the item); it is pushed on top
    /// of the server's version.
    Value(Option<Value>),
}

/// What became of a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResolveOutcome {
    /// Written; it is pushed with the next sync.
    Resolved,
    /// The item has no open conflict (resolved already, e.g. in another tab): nothing written.
    NotOpen,
    /// The server's version changed since the conflict was read (a newer one was pulled):
    /// nothing written, so edits the user has not seen are not overwritten. Read the conflict
    /// again and decide on the new version.
    RemoteChanged,
}

/// What an app's resolver sees of a conflict.
#[derive(Debug, Clone, Copy)]
pub struct ConflictCase<'a> {
    /// The item's collection.
    pub collection: &'a str,
    /// The item's id.
    pub id: &'a str,
    /// The last version both sides agreed on, when known.
    pub base: Option<&'a Value>,
    /// This device's version (`None`: deleted).
    pub local: Option<&'a Value>,
    /// When this device's change was made.
    pub local_hlc: &'a Hlc,
    /// The server's version (`None`: deleted).
    pub remote: Option<&'a Value>,
    /// When the server's version was made, if stamped.
    pub remote_hlc: Option<&'a Hlc>,
}

type ResolverFn = dyn Fn(&ConflictCase<'_>) -> Option<Resolution>;

/// An app's conflict resolver for [`ConflictStrategy::Custom`](persist_engine::ConflictStrategy::Custom):
/// `Some(resolution)` decides, `None` leaves the conflict to the user. It runs inside the sync's
/// local transaction, so it must be quick and must not await anything.
#[derive(Clone)]
pub struct Resolver(Rc<ResolverFn>);

impl Resolver {
    /// A resolver calling `decide`.
    pub fn new(decide: impl Fn(&ConflictCase<'_>) -> Option<Resolution> + 'static) -> Self {
        Resolver(Rc::new(decide))
    }

    /// What the resolver decides for `case`.
    pub fn decide(&self, case: &ConflictCase<'_>) -> Option<Resolution> {
        (self.0)(case)
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver(..)")
    }
}

impl PartialEq for Resolver {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Resolver {}
