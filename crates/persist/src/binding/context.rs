//! The persistence runtime of a yewdux context: [`start`] it with options, get it with
//! [`persistence`], stop it with [`shutdown`]. It is kept in the context itself, as a store.

use std::cell::RefCell;

use yewdux::Context;

use crate::error::Error;
use crate::runtime::{PersistOptions, Persistence};

/// The runtime of a yewdux context, kept in the context itself.
#[derive(Default)]
struct RuntimeSlot(RefCell<Slot>);

#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Running(Persistence),
    /// [`shutdown`] ran: stores created later are not persisted to the old database.
    Stopped,
}

impl yewdux::store::Store for RuntimeSlot {
    fn new(_: &Context) -> Self {
        Self::default()
    }

    fn should_notify(&self, _: &Self) -> bool {
        false
    }
}

/// Starts the persistence runtime of `cx` with `options` and returns it. Call it before any
/// persisted store is used (in `main`, before rendering); stores installed later use this
/// runtime. Without it, the first persisted store starts a runtime with
/// [`PersistOptions::default`]. After [`shutdown`] it starts a new runtime.
///
/// ```no_run
/// use yewdux_persist::{CollectionConfig, PersistOptions};
///
/// let cx = yewdux::Context::new(); // an app uses yewdux::Context::global()
/// yewdux_persist::start(
///     &cx,
///     PersistOptions::new("my-app").collection("settings", CollectionConfig::default().local_only()),
/// )
/// .expect("valid options, started once");
/// ```
///
/// # Errors
/// - [`Error::AlreadyStarted`] when the context already has a runtime.
/// - [`Error::Config`] when the options' configuration is invalid.
pub fn start(cx: &Context, options: PersistOptions) -> Result<Persistence, Error> {
    let slot = cx.get::<RuntimeSlot>();
    let mut slot = slot.0.borrow_mut();
    if matches!(*slot, Slot::Running(_)) {
        return Err(Error::AlreadyStarted);
    }
    let persistence = Persistence::new(options)?;
    *slot = Slot::Running(persistence.clone());
    Ok(persistence)
}

/// The runtime of `cx`, started with default options if none was started. After [`shutdown`],
/// a memory-only runtime (nothing is written to the old database).
pub fn persistence(cx: &Context) -> Persistence {
    let slot = cx.get::<RuntimeSlot>();
    let mut slot = slot.0.borrow_mut();
    match &*slot {
        Slot::Running(persistence) => persistence.clone(),
        Slot::Empty => {
            let persistence =
                Persistence::new(PersistOptions::default()).expect("the default options are valid");
            *slot = Slot::Running(persistence.clone());
            persistence
        }
        Slot::Stopped => {
            let persistence = Persistence::new(PersistOptions::default().memory_only())
                .expect("the default options are valid");
            persistence.note_storage("memory-only: persistence was shut down in this context");
            *slot = Slot::Running(persistence.clone());
            persistence
        }
    }
}

/// The runtime of `cx`, if one runs.
pub fn try_persistence(cx: &Context) -> Option<Persistence> {
    match &*cx.get::<RuntimeSlot>().0.borrow() {
        Slot::Running(persistence) => Some(persistence.clone()),
        Slot::Empty | Slot::Stopped => None,
    }
}

/// Stops the runtime of `cx` and returns it. A runtime lives as long as its yewdux context (which
/// is usually the whole page); this takes it out, so that once your own handles are dropped its
/// timers, page listeners and tab channel are dropped too. Flush first if you want queued changes
/// written. Persisted stores of `cx` stop persisting.
pub fn shutdown(cx: &Context) -> Option<Persistence> {
    let slot = cx.get::<RuntimeSlot>();
    let mut slot = slot.0.borrow_mut();
    match std::mem::replace(&mut *slot, Slot::Stopped) {
        Slot::Running(persistence) => Some(persistence),
        Slot::Empty | Slot::Stopped => None,
    }
}
