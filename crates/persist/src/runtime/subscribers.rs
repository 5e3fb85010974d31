//! A small single-threaded subscriber hub, used to tell the UI about new metrics and status;
//! [`Subscription`] is what a subscriber holds.
//!
//! Callbacks may subscribe, unsubscribe or notify again while being notified: the hub never
//! holds a borrow while it calls out.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

type Callback<T> = Rc<Entry<T>>;

struct Entry<T> {
    id: u64,
    /// Cleared on unsubscribe, so a snapshot taken by a running `notify` skips it.
    active: Cell<bool>,
    callback: Box<dyn Fn(&T)>,
}

struct Hub<T> {
    next_id: u64,
    entries: Vec<Callback<T>>,
}

/// A list of callbacks to notify with a `&T`.
///
/// Cloning gives another handle to the same list.
///
pub(crate) struct Subscribers<T> {
    hub: Rc<RefCell<Hub<T>>>,
}

impl<T> Subscribers<T> {
    /// An empty list.
    pub(crate) fn new() -> Self {
        Subscribers { hub: Rc::new(RefCell::new(Hub { next_id: 0, entries: Vec::new() })) }
    }

    /// Adds `callback`; it is called on every later [`notify`](Self::notify) until the returned
    /// [`Subscription`] is dropped. A callback added during a `notify` is first called by the
    /// next one.
    #[must_use = "dropping the Subscription unsubscribes at once; call detach() to keep it"]
    pub(crate) fn subscribe(&self, callback: impl Fn(&T) + 'static) -> Subscription
    where
        T: 'static,
    {
        let mut hub = self.hub.borrow_mut();
        let id = hub.next_id;
        hub.next_id += 1;
        hub.entries.push(Rc::new(Entry {
            id,
            active: Cell::new(true),
            callback: Box::new(callback),
        }));
        let weak: Weak<RefCell<Hub<T>>> = Rc::downgrade(&self.hub);
        Subscription { unsubscribe: Some(Box::new(move || unsubscribe(&weak, id))) }
    }

    /// Calls every subscribed callback with `value`, in subscription order.
    pub(crate) fn notify(&self, value: &T) {
        let snapshot: Vec<Callback<T>> = self.hub.borrow().entries.clone();
        for entry in snapshot {
            if entry.active.get() {
                (entry.callback)(value);
            }
        }
    }

    /// How many callbacks are subscribed.
    pub(crate) fn len(&self) -> usize {
        self.hub.borrow().entries.len()
    }

    /// Whether no callback is subscribed.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unsubscribe<T>(hub: &Weak<RefCell<Hub<T>>>, id: u64) {
    let Some(hub) = hub.upgrade() else { return };
    let removed = {
        let mut hub = hub.borrow_mut();
        let index = hub.entries.iter().position(|e| e.id == id);
        index.map(|i| hub.entries.remove(i))
    };
    if let Some(entry) = removed {
        entry.active.set(false);
        // `entry` (and the callback's captures) drop here, after the borrow ended, so a
        // capture's own Drop may use the hub.
    }
}

impl<T> Default for Subscribers<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Subscribers<T> {
    fn clone(&self) -> Self {
        Subscribers { hub: Rc::clone(&self.hub) }
    }
}

impl<T> fmt::Debug for Subscribers<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribers").field("len", &self.len()).finish()
    }
}

/// A subscription to the runtime's status or metrics (see
/// [`Persistence::subscribe_status`](crate::Persistence::subscribe_status)); dropping it
/// unsubscribes.
pub struct Subscription {
    unsubscribe: Option<Box<dyn FnOnce()>>,
}

impl Subscription {
    /// Keeps the callback subscribed for as long as the list lives, deliberately.
    pub fn detach(mut self) {
        self.unsubscribe = None;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(unsubscribe) = self.unsubscribe.take() {
            unsubscribe();
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").field("active", &self.unsubscribe.is_some()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> (Rc<Cell<u32>>, impl Fn(&u32) + 'static) {
        let count = Rc::new(Cell::new(0));
        let inner = Rc::clone(&count);
        (count, move |v: &u32| inner.set(inner.get() + v))
    }

    #[test]
    fn drop_unsubscribes_and_detach_keeps() {
        let hub = Subscribers::new();
        let (a, fa) = counter();
        let (b, fb) = counter();
        let sub_a = hub.subscribe(fa);
        hub.subscribe(fb).detach();
        hub.notify(&1);
        drop(sub_a);
        hub.notify(&1);
        assert_eq!((a.get(), b.get()), (1, 2));
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn callbacks_may_change_the_list_while_notified() {
        let hub: Subscribers<u32> = Subscribers::new();
        let (late, late_fn) = counter();
        let late_fn = Rc::new(late_fn);
        let victim_calls = Rc::new(Cell::new(0));
        let victim: Rc<RefCell<Option<Subscription>>> = Rc::default();
        let added: Rc<RefCell<Vec<Subscription>>> = Rc::default();

        let first = hub.subscribe({
            let (hub, victim, added, late_fn) =
                (hub.clone(), Rc::clone(&victim), Rc::clone(&added), Rc::clone(&late_fn));
            move |v| {
                // Unsubscribe a later callback and subscribe a new one, mid-notify.
                victim.borrow_mut().take();
                let late_fn = Rc::clone(&late_fn);
                added.borrow_mut().push(hub.subscribe(move |v| late_fn(v)));
                assert!(!hub.is_empty());
                if *v == 1 {
                    hub.notify(&10); // re-entrant notify
                }
            }
        });
        *victim.borrow_mut() = Some(hub.subscribe({
            let calls = Rc::clone(&victim_calls);
            move |_| calls.set(calls.get() + 1)
        }));
        hub.notify(&1);
        // The victim was removed before its turn, in both the outer and inner notify.
        assert_eq!(victim_calls.get(), 0);
        // The first subscription added in the outer call saw the inner notify (10).
        assert_eq!(late.get(), 10);
        drop(first);
        added.borrow_mut().clear();
        assert!(hub.is_empty());
    }

    #[test]
    fn subscription_outliving_the_hub_is_harmless() {
        let hub = Subscribers::<u32>::new();
        let sub = hub.subscribe(|_| {});
        drop(hub);
        drop(sub);
    }
}
