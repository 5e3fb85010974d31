//! The simulation's values and its app resolver.
//!
//! Every item is a JSON object `{"a": n, "b": n, "text": "4 lines"}`; a write changes one field
//! (or one line of the text), so concurrent edits often touch different fields (a merge) and
//! sometimes the same one (a fallback, or a question for the user).
//!
//! [`custom_decide`] is the app's resolver of the seeds on [`ConflictStrategy::Custom`]
//! (deterministic, a function of the conflict only, so the checker can ask it again):
//! - a delete on either side: left to the user;
//! - item `f`: keeps the side with the larger `a` (ties: local);
//! - otherwise field by field: a field changed on one side takes that side's value; numbers
//!   changed on both sides are summed (with the base subtracted once); texts changed on both
//!   sides take the lexicographically larger one for items `a`–`c`, and are left to the user
//!   otherwise.
//!
//! [`ConflictStrategy::Custom`]: persist_engine::ConflictStrategy::Custom

use serde_json::{Map, Value};

use crate::local::{ConflictCase, Resolution, Resolver};

/// The fields of every value.
pub(super) const FIELDS: [&str; 3] = ["a", "b", "text"];
/// Lines of the text field.
pub(super) const TEXT_LINES: usize = 4;

/// Numbers summed by the resolver stay below this.
const MODULUS: i64 = 1_000_000_007;

/// The keys of the present objects, each once, in order.
pub(super) fn union_keys<'a>(maps: &[Option<&'a Map<String, Value>>]) -> Vec<&'a String> {
    let mut keys: Vec<&String> = Vec::new();
    for map in maps.iter().flatten() {
        for key in map.keys() {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// What the simulation's app resolver decides for `case`.
pub(super) fn custom_decide(case: &ConflictCase<'_>) -> Option<Resolution> {
    let (Some(Value::Object(local)), Some(Value::Object(remote))) = (case.local, case.remote)
    else {
        return None;
    };
    if case.id == "f" {
        let a = |map: &Map<String, Value>| map.get("a").and_then(Value::as_i64).unwrap_or(0);
        return Some(if a(local) >= a(remote) {
            Resolution::KeepLocal
        } else {
            Resolution::KeepRemote
        });
    }
    let base = case.base.and_then(Value::as_object);
    let mut out = Map::new();
    for key in union_keys(&[Some(local), Some(remote), base]) {
        let (l, r, b) = (local.get(key), remote.get(key), base.and_then(|b| b.get(key)));
        let value = if l == r || r == b {
            l.cloned()
        } else if l == b {
            r.cloned()
        } else {
            match (l, r) {
                (Some(Value::Number(x)), Some(Value::Number(y))) => {
                    let (x, y) = (x.as_i64()?, y.as_i64()?);
                    let b = b.and_then(Value::as_i64).unwrap_or(0);
                    Some(Value::from((x + y - b).rem_euclid(MODULUS)))
                }
                (Some(Value::String(x)), Some(Value::String(y))) if case.id <= "c" => {
                    Some(Value::String(x.max(y).clone()))
                }
                _ => return None,
            }
        };
        if let Some(value) = value {
            out.insert(key.clone(), value);
        }
    }
    Some(Resolution::Value(Some(Value::Object(out))))
}

/// The resolver registered for every collection (used where the strategy is custom).
pub(super) fn resolver() -> Resolver {
    Resolver::new(custom_decide)
}
