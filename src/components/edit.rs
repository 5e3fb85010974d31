//! [`ItemEditor`]: turns form events into changes of one workspace item.

use std::rc::Rc;

use yew::prelude::*;

use crate::dom::{checked_of, value_of};

/// A change of one item.
pub(crate) type Change<T> = Box<dyn FnOnce(&mut T)>;

/// Applies changes to one item (of any collection) and makes event callbacks that do.
pub(crate) struct ItemEditor<T> {
    apply: Rc<dyn Fn(Change<T>)>,
}

impl<T> Clone for ItemEditor<T> {
    fn clone(&self) -> Self {
        Self { apply: Rc::clone(&self.apply) }
    }
}

impl<T: 'static> ItemEditor<T> {
    /// An editor whose changes go through `apply` (which finds the item in its store).
    pub(crate) fn new(apply: impl Fn(Change<T>) + 'static) -> Self {
        Self { apply: Rc::new(apply) }
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut T) + 'static) {
        (self.apply)(Box::new(change));
    }

    /// Stores a text input's value with `set` on every keystroke.
    pub(crate) fn on_input(&self, set: impl Fn(&mut T, String) + 'static) -> Callback<InputEvent> {
        let (this, set) = (self.clone(), Rc::new(set));
        Callback::from(move |e: InputEvent| {
            let (value, set) = (value_of(&e), Rc::clone(&set));
            this.update(move |item| set(item, value));
        })
    }

    /// Stores a `<select>`'s value with `set` when it changes.
    pub(crate) fn on_select(&self, set: impl Fn(&mut T, String) + 'static) -> Callback<Event> {
        let (this, set) = (self.clone(), Rc::new(set));
        Callback::from(move |e: Event| {
            let (value, set) = (value_of(&e), Rc::clone(&set));
            this.update(move |item| set(item, value));
        })
    }

    /// Stores a checkbox's state with `set` when it changes.
    pub(crate) fn on_toggle(&self, set: impl Fn(&mut T, bool) + 'static) -> Callback<Event> {
        let (this, set) = (self.clone(), Rc::new(set));
        Callback::from(move |e: Event| {
            let (checked, set) = (checked_of(&e), Rc::clone(&set));
            this.update(move |item| set(item, checked));
        })
    }

    /// Applies `change` on click.
    pub(crate) fn on_click(&self, change: impl Fn(&mut T) + 'static) -> Callback<MouseEvent> {
        let (this, change) = (self.clone(), Rc::new(change));
        Callback::from(move |_: MouseEvent| {
            let change = Rc::clone(&change);
            this.update(move |item| change(item));
        })
    }
}
