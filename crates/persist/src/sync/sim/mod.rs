//! A deterministic simulation of client sync, native and seeded:
//! `cargo test -p yewdux-persist --lib --features testing sim -- --nocapture`.
//!
//! Each seed builds a world: 3–4 clients, each a [`MemoryStore`] (its IndexedDB: it survives a
//! crash) written by 2–3 tabs, and one [`MemoryRemote`] (the server, whose state is durable).
//! Every client talks to the server through a [`SimNetwork`] that drops, delays, duplicates and
//! reorders messages (`network.rs`). Then [`STEPS`] random steps over a small key space (2
//! collections × 6 ids, so conflicts are frequent): a tab changes items (in its memory first,
//! durable once written to the store), a client syncs (the real [`run`]), goes offline for a long
//! stretch, or crashes (between two steps or in the middle of a sync: tab memory lost, store
//! kept; the tabs come back as new page sessions), the server restarts (unreachable for a
//! while), another device writes on the server, a message in flight arrives late. Then
//! quiescence: the network heals, everything in flight arrives, every client syncs until its
//! outbox is empty, then once more.
//!
//! Values are JSON objects `{"a": n, "b": n, "text": "4 lines"}` (`values.rs`); a write changes
//! one field or one line of the text (some writes delete, some set a small shared value), so
//! concurrent edits often touch different fields (a merge) and sometimes the same one (a
//! fallback, or a question for the user). Each seed takes its default conflict strategy from
//! [`ConflictStrategy::ALL`] by `seed % 9`, and a third of the seeds put one collection on
//! another strategy; the app's resolver (for custom) is `values::custom_decide`. A simulated
//! user per client looks at its open conflicts at random steps, leaves some for later and
//! resolves the others (keep this device's value, take the server's, a merge preferring a side,
//! a hand edit) through [`LocalStore::resolve_conflict`], stamped by one of the client's tab
//! clocks; at quiescence the users resolve every open conflict, so the replicas can converge.
//!
//! The invariants are checked all along and at quiescence (`invariants.rs`): every replica equals
//! the server; every op the server acknowledged is on the server; every change durable in a
//! client's store reaches the server, or is settled as its strategy says; no conflict resolved
//! once comes back; a merge keeps every field only one side changed; a conflict the user
//! resolved never reopens against the same server version; a conflict left to the user is never
//! decided, nor its change pushed, without the user.
//!
//! Seeds: `SIM_SEEDS=<n>` runs seeds 0..n (default [`DEFAULT_SEEDS`]), `SIM_SEED=<n>` exactly
//! seed n, and `SIM_TRACE=1` prints each step and each push answer (with `--nocapture`).
//!
//! It found that the memory store's `pending_pushes` still listed items with an open conflict
//! (invariant 7, at the first seed that asks the user); fixed.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use persist_engine::{
    BatchId, Change, ConflictStrategy, ItemKey, MergeFallback, Payload, QueuedOp, WriteBatch,
};
use persist_protocol::{Hlc, OpId};
use serde_json::{json, Value};

use super::{run, RunOptions};
use crate::local::{Conflict, LocalStore, MemoryStore, Resolution, SyncRules};
use crate::merge::{merge3, Side};
use crate::remote::MemoryRemote;

mod invariants;
mod network;
mod rng;
mod values;

use invariants::Checker;
use network::{deliver_in_flight, InFlight, SimNetwork};
use rng::Rng;

/// Random steps per seed, before quiescence.
const STEPS: u64 = 400;
/// Seeds run when `SIM_SEEDS` is not set.
const DEFAULT_SEEDS: u64 = 1_000;
/// Syncs of every client at quiescence within which every outbox must be empty.
const DRAIN_ROUNDS: usize = 20;
/// Messages kept in flight at most (older ones are lost when more come).
const MAX_IN_FLIGHT: usize = 24;
const COLLECTIONS: [&str; 2] = ["notes", "files"];
const IDS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
/// How to run one seed again.
const REPLAY: &str = "cargo test -p yewdux-persist --lib --features testing sim -- --nocapture";

/// An item's key: `(collection, id)`.
type Key = (String, String);

/// Polls an in-memory future once: everything in the simulation is ready at once.
fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("in-memory futures are ready at once"),
    }
}

macro_rules! figures {
    ($($field:ident: $label:literal,)*) => {
        /// What the simulation did, summed over seeds.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub(super) struct Figures {
            $(pub(super) $field: u64,)*
        }

        impl Figures {
            fn merge(&mut self, other: &Figures) {
                $(self.$field += other.$field;)*
            }

            fn lines(&self) -> Vec<(&'static str, u64)> {
                vec![$(($label, self.$field),)*]
            }
        }
    };
}

figures! {
    seeds: "seeds",
    seeds_server_wins: "  by default: server wins",
    seeds_client_wins: "  by default: this device wins",
    seeds_last_writer_wins: "  by default: last writer wins",
    seeds_merge_manual: "  by default: merge, else ask",
    seeds_merge_server_wins: "  by default: merge, else server wins",
    seeds_merge_client_wins: "  by default: merge, else this device wins",
    seeds_merge_last_writer_wins: "  by default: merge, else last writer wins",
    seeds_manual: "  by default: ask",
    seeds_custom: "  by default: app's resolver",
    seeds_mixed: "  with one collection on another strategy",
    steps: "steps",
    clients: "clients",
    tabs: "tabs",
    local_changes: "local changes (made by tabs)",
    durable_changes: "changes durable (written to a store)",
    lost_in_crashes: "changes lost in crashes (never durable)",
    server_writes: "server writes by another device",
    syncs: "syncs",
    syncs_failed: "  failed (network, offline, crash)",
    push_requests: "push requests sent",
    pull_requests: "pull requests sent",
    refused_offline: "requests refused: client offline",
    refused_restarting: "requests refused: server restarting",
    dropped_requests: "faults: requests dropped",
    dropped_answers: "faults: answers dropped (server applied)",
    duplicated: "faults: requests duplicated",
    delayed: "faults: requests delayed",
    delayed_delivered: "  delayed requests delivered late",
    stale_kept: "faults: stale copies kept",
    stale_delivered: "  stale copies re-delivered",
    writes_in_sync: "tab writes during a sync",
    offline_stretches: "offline stretches",
    crashes: "client crashes",
    crashes_in_sync: "  in the middle of a sync",
    server_restarts: "server restarts",
    conflicts: "conflicts (sync reports)",
    overruled: "  overruled (sync reports)",
    merged: "  merged (sync reports)",
    manual: "  left to the user (sync reports)",
    acknowledged: "acknowledged (sync reports)",
    user_resolved: "conflicts resolved by the user",
    user_keep_local: "  keeping this device's value",
    user_keep_remote: "  taking the server's value",
    user_merged: "  with a merge",
    user_edited: "  with a hand edit",
    user_resolved_quiescent: "  at quiescence (still open when the network healed)",
    user_resolution_pushed: "  resolutions pushed (the rest took the server's version)",
    user_deferred: "times the user left an open conflict for later",
    fate_acknowledged: "durable changes acknowledged",
    fate_same_value: "durable changes settled: server had the same value",
    fate_superseded: "durable changes superseded by a newer local change",
    fate_overruled: "durable changes overruled (server-wins, older last writer, resolver)",
    fate_overruled_by_own_change: "  by the same client's earlier change",
    fate_rebased: "durable changes re-pushed after a conflict",
    fate_rebased_merged: "  with a merged or resolver's value",
    fate_merged_to_server: "durable changes merged into the server's version",
    fate_user_took_server: "durable changes replaced by the user's pick of the server's",
    merges_checked: "merges checked field by field (invariant 5)",
    resolver_checked: "resolver decisions checked",
    conflicts_opened: "conflicts opened for the user (seen in stores)",
    conflicts_closed_same_value: "  closed as the server came to the same value",
    pushes_checked_for_open: "pushed ops checked against open conflicts",
    acks_checked: "acknowledgements checked on the server",
    convergence_checks: "replicas compared at quiescence",
    convergence_failures: "convergence failures",
    acked_lost: "acknowledged ops lost",
}

impl Figures {
    /// Counts a seed's default strategy.
    fn count_strategy(&mut self, strategy: ConflictStrategy) {
        let count = match strategy {
            ConflictStrategy::ServerWins => &mut self.seeds_server_wins,
            ConflictStrategy::ClientWins => &mut self.seeds_client_wins,
            ConflictStrategy::LastWriterWins => &mut self.seeds_last_writer_wins,
            ConflictStrategy::Merge(MergeFallback::Manual) => &mut self.seeds_merge_manual,
            ConflictStrategy::Merge(MergeFallback::ServerWins) => &mut self.seeds_merge_server_wins,
            ConflictStrategy::Merge(MergeFallback::ClientWins) => &mut self.seeds_merge_client_wins,
            ConflictStrategy::Merge(MergeFallback::LastWriterWins) => {
                &mut self.seeds_merge_last_writer_wins
            }
            ConflictStrategy::Manual => &mut self.seeds_manual,
            ConflictStrategy::Custom => &mut self.seeds_custom,
        };
        *count += 1;
    }
}

/// Fault rates of one seed.
#[derive(Debug, Clone)]
struct Faults {
    drop_request: f64,
    drop_answer: f64,
    duplicate: f64,
    delay: f64,
    keep_stale: f64,
    crash_in_sync: f64,
    write_in_sync: f64,
}

/// One tab: a page session writing into its client's store. What it holds in memory is lost in
/// a crash.
#[derive(Debug)]
struct Tab {
    /// `c<client>.t<tab>s<session>` (device `c<client>`, as the runtime names nodes): op ids `<node>-<serial>` stay unique across sessions.
    node: String,
    serial: u64,
    clock: Hlc,
    /// How far ahead this tab's wall clock runs, in ms.
    skew: u64,
    /// Changes made, not written to the store yet (at most one per item).
    pending: Vec<QueuedOp>,
}

impl Tab {
    fn new(client: usize, tab: usize, session: u32, skew: u64) -> Self {
        let node = format!("c{client}.t{tab}s{session}");
        Tab { clock: Hlc::zero(node.clone()), node, serial: 0, skew, pending: Vec::new() }
    }
}

/// One client: its store (durable) and its tabs (memory).
#[derive(Debug)]
struct Client {
    store: MemoryStore,
    tabs: RefCell<Vec<Tab>>,
    sessions: Cell<u32>,
    offline_until: Cell<u64>,
}

/// Everything of one seed.
struct World {
    rng: RefCell<Rng>,
    server: MemoryRemote,
    rules: SyncRules,
    faults: Faults,
    clients: Vec<Client>,
    checker: RefCell<Checker>,
    figures: RefCell<Figures>,
    in_flight: RefCell<Vec<InFlight>>,
    step: Cell<u64>,
    server_down_until: Cell<u64>,
    /// Quiescence: no more faults.
    healed: Cell<bool>,
    /// A counter for values, so most writes write a value never seen before.
    values: Cell<u64>,
    trace: bool,
}

impl World {
    fn new(seed: u64, trace: bool) -> Rc<Self> {
        let mut rng = Rng::new(seed);
        let mut figures = Figures { seeds: 1, ..Figures::default() };
        // Every strategy in turn, by seed; a third of the seeds put one collection on another.
        let default = ConflictStrategy::ALL[(seed % ConflictStrategy::ALL.len() as u64) as usize];
        figures.count_strategy(default);
        let mut rules = SyncRules { default, ..SyncRules::default() };
        for collection in COLLECTIONS {
            // Used where the strategy is custom; a function of the conflict only.
            rules.resolvers.insert(collection.to_owned(), values::resolver());
        }
        if rng.chance(1.0 / 3.0) {
            figures.seeds_mixed = 1;
            let others: Vec<ConflictStrategy> =
                ConflictStrategy::ALL.into_iter().filter(|s| *s != default).collect();
            let other = others[rng.index(others.len())];
            rules.collections.insert(COLLECTIONS[rng.index(2)].to_owned(), other);
        }
        let faults = Faults {
            drop_request: rng.uniform(0.0, 0.2),
            drop_answer: rng.uniform(0.0, 0.2),
            duplicate: rng.uniform(0.0, 0.1),
            delay: rng.uniform(0.0, 0.1),
            keep_stale: rng.uniform(0.0, 0.3),
            crash_in_sync: rng.uniform(0.0, 0.06),
            write_in_sync: rng.uniform(0.0, 0.2),
        };
        let count = rng.between(3, 4) as usize;
        let clients: Vec<Client> = (0..count)
            .map(|c| {
                let tabs = rng.between(2, 3) as usize;
                figures.tabs += tabs as u64;
                Client {
                    store: MemoryStore::new(),
                    tabs: RefCell::new(
                        (0..tabs).map(|t| Tab::new(c, t, 0, rng.below(3_000))).collect(),
                    ),
                    sessions: Cell::new(0),
                    offline_until: Cell::new(0),
                }
            })
            .collect();
        figures.clients = count as u64;
        let keys = COLLECTIONS
            .iter()
            .flat_map(|c| IDS.iter().map(|id| ((*c).to_owned(), (*id).to_owned())))
            .collect();
        Rc::new(World {
            rng: RefCell::new(rng),
            server: MemoryRemote::new(),
            rules,
            faults,
            checker: RefCell::new(Checker::new(clients.len(), keys)),
            clients,
            figures: RefCell::new(figures),
            in_flight: RefCell::new(Vec::new()),
            step: Cell::new(0),
            server_down_until: Cell::new(0),
            healed: Cell::new(false),
            values: Cell::new(0),
            trace,
        })
    }

    fn chance(&self, p: f64) -> bool {
        self.rng.borrow_mut().chance(p)
    }

    fn below(&self, n: u64) -> u64 {
        self.rng.borrow_mut().below(n)
    }

    fn between(&self, low: u64, high: u64) -> u64 {
        self.rng.borrow_mut().between(low, high)
    }

    fn trace(&self, what: std::fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("[{:>3}] {what}", self.step.get());
        }
    }

    fn offline(&self, client: usize) -> bool {
        !self.healed.get() && self.clients[client].offline_until.get() > self.step.get()
    }

    fn server_down(&self) -> bool {
        !self.healed.get() && self.server_down_until.get() > self.step.get()
    }

    /// Puts a message in flight; when too many are, a random one is lost.
    fn in_flight(&self, message: InFlight) {
        let full = self.in_flight.borrow().len() >= MAX_IN_FLIGHT;
        if full {
            let index = self.below(MAX_IN_FLIGHT as u64) as usize;
            self.in_flight.borrow_mut().swap_remove(index);
        }
        self.in_flight.borrow_mut().push(message);
    }

    /// Compares `client`'s outbox with the checker's shadow.
    fn observe(&self, client: usize) {
        self.checker.borrow_mut().observe(client, &self.clients[client].store, &self.rules);
    }

    /// One random step.
    fn random_step(self: &Rc<Self>) {
        let client = self.below(self.clients.len() as u64) as usize;
        match self.below(100) {
            0..=29 => {
                let flush = self.chance(0.6);
                self.tab_write(client, None, flush);
            }
            30..=37 => {
                let tab = self.below(self.clients[client].tabs.borrow().len() as u64) as usize;
                self.flush(client, tab);
            }
            38..=69 | 97..=99 => self.sync(client),
            92..=96 => self.user_looks(client, false),
            70..=72 => {
                self.trace(format_args!("client {client} crashes"));
                self.crash(client);
            }
            73 => {
                let until = self.step.get() + self.between(2, 12);
                self.trace(format_args!("the server restarts (down until {until})"));
                self.server_down_until.set(until);
                self.figures.borrow_mut().server_restarts += 1;
            }
            74 => {
                let until = self.step.get() + self.between(20, 150);
                self.trace(format_args!("client {client} goes offline until {until}"));
                self.clients[client].offline_until.set(until);
                self.figures.borrow_mut().offline_stretches += 1;
            }
            75..=83 => {
                if self.server_down() || self.in_flight.borrow().is_empty() {
                    return;
                }
                let index = self.below(self.in_flight.borrow().len() as u64) as usize;
                let message = self.in_flight.borrow()[index].clone();
                self.trace(format_args!("in flight arrives: {message:?}"));
                deliver_in_flight(self, &message);
                let mut in_flight = self.in_flight.borrow_mut();
                if message.reached && self.chance(0.5) {
                    // Stays around: it may come again.
                } else if message.reached {
                    in_flight.remove(index);
                } else {
                    in_flight[index].reached = true;
                }
            }
            _ => self.device_write(),
        }
    }

    /// A new number: most never seen before, some small shared ones.
    fn number(&self) -> u64 {
        if self.chance(0.15) {
            self.below(3)
        } else {
            let n = self.values.get() + 1;
            self.values.set(n);
            n
        }
    }

    /// A new line of text by `writer`.
    fn line(&self, writer: &str) -> String {
        let n = self.values.get() + 1;
        self.values.set(n);
        format!("{writer} {n}")
    }

    /// `current` with one field (or one line of the text) changed by `writer`; a new value when
    /// absent. Some writes set a small shared value (equal values from different writers are no
    /// conflict).
    fn edited(&self, current: Option<&Value>, writer: &str) -> Value {
        if self.chance(0.05) {
            let k = self.below(3);
            return json!({ "a": k, "b": 0, "text": "-\n".repeat(values::TEXT_LINES) });
        }
        let Some(Value::Object(current)) = current else {
            let text: String = (0..values::TEXT_LINES).map(|_| self.line(writer) + "\n").collect();
            return json!({ "a": self.number(), "b": self.number(), "text": text });
        };
        let mut value = current.clone();
        let field = values::FIELDS[self.below(values::FIELDS.len() as u64) as usize];
        if field == "text" {
            let text = value.get("text").and_then(Value::as_str).unwrap_or_default();
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines.resize(values::TEXT_LINES, String::new());
            let at = self.below(values::TEXT_LINES as u64) as usize;
            lines[at] = self.line(writer);
            let text: String = lines.into_iter().map(|line| line + "\n").collect();
            value.insert("text".to_owned(), Value::String(text));
        } else {
            value.insert(field.to_owned(), json!(self.number()));
        }
        Value::Object(value)
    }

    fn key(&self) -> (usize, usize) {
        (self.below(COLLECTIONS.len() as u64) as usize, self.below(IDS.len() as u64) as usize)
    }

    /// A tab of `client` (`tab`, or a random one) changes 1–3 items in its memory, and writes
    /// them to the store if `flush`.
    fn tab_write(&self, client: usize, tab: Option<usize>, flush: bool) {
        let tabs = self.clients[client].tabs.borrow().len();
        let tab = tab.unwrap_or_else(|| self.below(tabs as u64) as usize);
        let count = self.between(1, 3);
        for _ in 0..count {
            let (collection, id) = self.key();
            let node = self.clients[client].tabs.borrow()[tab].node.clone();
            let key = ItemKey::new(COLLECTIONS[collection], IDS[id]);
            let change = if self.chance(0.12) {
                Change::Delete
            } else {
                let current = self.tab_view(client, tab, &key);
                Change::Put(Payload::from(self.edited(current.as_ref(), &node).to_string()))
            };
            let now = self.step.get() * 1_000 + self.below(1_000);
            let mut tabs = self.clients[client].tabs.borrow_mut();
            let tab = &mut tabs[tab];
            tab.serial += 1;
            let mut op = QueuedOp::new(key, change, tab.serial);
            op.op_id = OpId::new(format!("{}-{}", tab.node, tab.serial));
            op.hlc = tab.clock.tick(now + tab.skew);
            self.trace(format_args!("{} changes {}: {:?}", tab.node, op.key, op.change));
            tab.pending.retain(|queued| queued.key != op.key);
            tab.pending.push(op);
            self.figures.borrow_mut().local_changes += 1;
        }
        if flush {
            self.flush(client, tab);
        }
    }

    /// The value of `key` as tab `tab` of `client` sees it: its own change not written yet, else
    /// the store's.
    fn tab_view(&self, client: usize, tab: usize, key: &ItemKey) -> Option<Value> {
        let tabs = self.clients[client].tabs.borrow();
        if let Some(op) = tabs[tab].pending.iter().find(|op| op.key == *key) {
            return match &op.change {
                Change::Put(payload) => serde_json::from_str(payload.as_str()).ok(),
                Change::Delete => None,
            };
        }
        let store = &self.clients[client].store;
        let ids = [key.id.to_string()];
        let found = ready(store.load_items(&key.collection, &ids)).expect("memory");
        found.into_iter().next().flatten().and_then(|json| serde_json::from_str(&json).ok())
    }

    /// A tab writes what it holds to the store, in one transaction: the changes are durable.
    fn flush(&self, client: usize, tab: usize) {
        let ops = std::mem::take(&mut self.clients[client].tabs.borrow_mut()[tab].pending);
        if ops.is_empty() {
            return;
        }
        let batches: Vec<WriteBatch> = COLLECTIONS
            .iter()
            .map(|collection| WriteBatch {
                id: BatchId(self.step.get()),
                collection: Arc::from(*collection),
                ops: ops.iter().filter(|op| &*op.key.collection == *collection).cloned().collect(),
            })
            .filter(|batch| !batch.ops.is_empty())
            .collect();
        let store = &self.clients[client].store;
        ready(store.write_all(&batches)).expect("the memory store writes");
        self.trace(format_args!("client {client} tab {tab} writes {} changes", ops.len()));
        let mut checker = self.checker.borrow_mut();
        for op in &ops {
            let key = (op.key.collection.to_string(), op.key.id.to_string());
            let (value, text) = match &op.change {
                Change::Put(payload) => {
                    let text = payload.as_str();
                    (Some(serde_json::from_str(text).expect("JSON")), Some(text.to_owned()))
                }
                Change::Delete => (None, None),
            };
            checker.on_durable_write(client, key, &op.op_id, value, text, &op.hlc);
        }
        self.figures.borrow_mut().durable_changes += ops.len() as u64;
    }

    /// The client's page goes away: the tabs' memory is lost, the store stays; the tabs come
    /// back as new page sessions.
    fn crash(&self, client: usize) {
        let state = &self.clients[client];
        let session = state.sessions.get() + 1;
        state.sessions.set(session);
        let mut tabs = state.tabs.borrow_mut();
        let mut figures = self.figures.borrow_mut();
        figures.crashes += 1;
        for (index, tab) in tabs.iter_mut().enumerate() {
            figures.lost_in_crashes += tab.pending.len() as u64;
            *tab = Tab::new(client, index, session, tab.skew);
        }
    }

    /// Another device writes an item on the server.
    fn device_write(&self) {
        if self.server_down() {
            return;
        }
        let (collection, id) = self.key();
        let value = if self.chance(0.12) {
            None
        } else {
            let current = self.server.record(COLLECTIONS[collection], IDS[id]);
            let current = current.filter(|r| !r.deleted).map(|r| r.value);
            Some(self.edited(current.as_ref(), "device"))
        };
        self.trace(format_args!(
            "another device writes {}/{}: {value:?}",
            COLLECTIONS[collection], IDS[id]
        ));
        self.server.write(COLLECTIONS[collection], IDS[id], value);
        self.checker.borrow_mut().after_server_call(&self.server);
        self.figures.borrow_mut().server_writes += 1;
    }

    /// `client` runs one sync through its network.
    fn sync(self: &Rc<Self>, client: usize) {
        let options = RunOptions {
            push_batch: self.between(1, 4) as usize,
            pull_page: self.between(1, 6) as u32,
            full_pull: self.chance(0.03),
            // Each client is a device: its own older versions never overrule its newer changes.
            rules: SyncRules { device: Some(format!("c{client}")), ..self.rules.clone() },
        };
        let crash_at = (!self.healed.get() && self.chance(self.faults.crash_in_sync))
            .then(|| self.below(4) as usize);
        let network = SimNetwork::new(Rc::clone(self), client, crash_at);
        let store = &self.clients[client].store;
        let (report, result) = ready(run(store, &network, &options, &|_, _| {}));
        self.observe(client);
        self.trace(format_args!("client {client} syncs: {report:?} {result:?}"));
        {
            let mut figures = self.figures.borrow_mut();
            figures.syncs += 1;
            figures.syncs_failed += u64::from(result.is_err());
            figures.conflicts += report.applied.conflicts as u64;
            figures.overruled += report.applied.overruled as u64;
            figures.merged += report.applied.merged as u64;
            figures.manual += report.applied.manual as u64;
            figures.acknowledged += report.applied.acknowledged as u64;
        }
        if network.crashed() {
            self.trace(format_args!("client {client} crashed during the sync"));
            self.crash(client);
        }
    }

    /// The user of `client` looks at its open conflicts: resolves some, leaves the others for
    /// later (`all`: resolves every one, at quiescence).
    fn user_looks(&self, client: usize, all: bool) {
        let open = ready(self.clients[client].store.conflicts()).expect("memory");
        if open.is_empty() {
            return;
        }
        for conflict in open {
            if !all && self.chance(0.4) {
                self.trace(format_args!(
                    "the user of client {client} leaves the conflict of {}/{} for later",
                    conflict.collection, conflict.id
                ));
                self.figures.borrow_mut().user_deferred += 1;
                continue;
            }
            self.resolve(client, &conflict, all);
        }
    }

    /// The user of `client` resolves `conflict`: keeps this device's value, takes the server's,
    /// merges both (preferring a side), or edits a value by hand.
    fn resolve(&self, client: usize, conflict: &Conflict, quiescent: bool) {
        let store = &self.clients[client].store;
        let ids = [conflict.id.clone()];
        let found = ready(store.load_items(&conflict.collection, &ids)).expect("memory");
        let local: Option<Value> =
            found.into_iter().next().flatten().and_then(|json| serde_json::from_str(&json).ok());
        let node = self.clients[client].tabs.borrow()[0].node.clone();
        let pick = self.below(4);
        let resolution = match pick {
            0 => Resolution::KeepLocal,
            1 => Resolution::KeepRemote,
            2 => {
                let side = if self.chance(0.5) { Side::Local } else { Side::Remote };
                let merged = merge3(
                    conflict.base.as_ref(),
                    local.as_ref(),
                    conflict.remote.as_ref(),
                    Some(side),
                );
                Resolution::Value(merged.expect("a merge preferring a side always succeeds"))
            }
            _ if self.chance(0.1) => Resolution::Value(None),
            _ => {
                let from = if self.chance(0.5) { local.as_ref() } else { conflict.remote.as_ref() };
                Resolution::Value(Some(self.edited(from, &node)))
            }
        };
        let now = self.step.get() * 1_000 + self.below(1_000);
        let stamp = {
            let mut tabs = self.clients[client].tabs.borrow_mut();
            let tab = &mut tabs[0];
            tab.clock.tick(now + tab.skew)
        };
        self.trace(format_args!(
            "the user of client {client} resolves {}/{} (remote revision {}): {resolution:?}",
            conflict.collection, conflict.id, conflict.remote_revision
        ));
        let keep_base = self.rules.keeps_base(&conflict.collection);
        let (outcome, _) = ready(store.resolve_conflict(conflict, &resolution, &stamp, keep_base))
            .expect("memory");
        assert_eq!(
            outcome,
            crate::local::ResolveOutcome::Resolved,
            "client {client}: the listed conflict {conflict:?} is not open as listed"
        );
        self.checker.borrow_mut().on_resolution(client, conflict, store);
        let mut figures = self.figures.borrow_mut();
        figures.user_resolved += 1;
        figures.user_resolved_quiescent += u64::from(quiescent);
        match pick {
            0 => figures.user_keep_local += 1,
            1 => figures.user_keep_remote += 1,
            2 => figures.user_merged += 1,
            _ => figures.user_edited += 1,
        }
    }

    fn outbox_len(&self, client: usize) -> usize {
        ready(self.clients[client].store.outbox_len()).expect("memory")
    }

    /// The network heals, everything in flight arrives, the tabs write what they hold, every
    /// client syncs until its outbox is empty, then once more; then the invariants.
    fn quiesce(self: &Rc<Self>) {
        self.healed.set(true);
        self.trace(format_args!("quiescence"));
        let in_flight = std::mem::take(&mut *self.in_flight.borrow_mut());
        for message in in_flight {
            deliver_in_flight(self, &message);
        }
        for client in 0..self.clients.len() {
            let tabs = self.clients[client].tabs.borrow().len();
            for tab in 0..tabs {
                self.flush(client, tab);
            }
        }
        let mut round = 0;
        while (0..self.clients.len()).any(|client| self.outbox_len(client) > 0) {
            assert!(
                round < DRAIN_ROUNDS,
                "invariant 3: the outboxes did not drain in {DRAIN_ROUNDS} rounds of syncs: {:?}",
                (0..self.clients.len()).map(|c| self.outbox_len(c)).collect::<Vec<_>>()
            );
            for client in 0..self.clients.len() {
                // The users resolve every open conflict, so the replicas can converge.
                self.user_looks(client, true);
                self.sync(client);
            }
            round += 1;
        }
        for client in 0..self.clients.len() {
            self.sync(client);
        }
        let stores: Vec<&MemoryStore> = self.clients.iter().map(|c| &c.store).collect();
        self.checker.borrow_mut().at_quiescence(&stores, &self.server, &COLLECTIONS);
    }

    /// The figures of the seed, once it ran.
    fn figures(&self) -> Figures {
        let mut figures = self.figures.borrow().clone();
        let checker = self.checker.borrow();
        figures.merge(&checker.figures);
        // What the sync reports counted must be what the checker saw happen.
        let seen = (
            figures.fate_overruled
                + figures.fate_rebased
                + figures.fate_merged_to_server
                + figures.conflicts_opened,
            figures.fate_overruled,
            figures.fate_rebased_merged + figures.fate_merged_to_server,
            figures.conflicts_opened,
        );
        assert_eq!(
            (figures.conflicts, figures.overruled, figures.merged, figures.manual),
            seen,
            "the sync reports' conflicts, overrules, merges and questions for the user differ \
             from the changes seen overruled, re-pushed, merged or left to the user"
        );
        figures
    }
}

/// Runs one seed; `Err` carries what broke.
fn simulate(seed: u64, trace: bool) -> Result<Figures, String> {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let world = World::new(seed, trace);
        for step in 0..STEPS {
            world.step.set(step);
            world.random_step();
        }
        world.step.set(STEPS);
        world.quiesce();
        let mut figures = world.figures();
        figures.steps = STEPS;
        figures
    }));
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name}={value}: not a number")))
}

/// Runs `seeds` on all cores; the figures, and the first failing seed with what broke.
fn simulate_all(seeds: &[u64], trace: bool) -> (Figures, Option<(u64, String)>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(seeds.len());
    let stop = AtomicBool::new(false);
    let results: Vec<(Figures, Option<(u64, String)>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut figures = Figures::default();
                    for &seed in seeds.iter().skip(worker).step_by(threads) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match simulate(seed, trace) {
                            Ok(seed_figures) => figures.merge(&seed_figures),
                            Err(message) => {
                                stop.store(true, Ordering::Relaxed);
                                return (figures, Some((seed, message)));
                            }
                        }
                    }
                    (figures, None)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a worker")).collect()
    });
    let mut figures = Figures::default();
    let mut failure: Option<(u64, String)> = None;
    for (worker_figures, worker_failure) in results {
        figures.merge(&worker_figures);
        if let Some((seed, message)) = worker_failure {
            if failure.as_ref().is_none_or(|(first, _)| seed < *first) {
                failure = Some((seed, message));
            }
        }
    }
    (figures, failure)
}

/// Prints the figures straight to stderr: visible in `make test` logs, where the test harness
/// captures `println!`/`eprintln!` of passing tests.
fn print_figures(figures: &Figures, threads: usize, seconds: f64) {
    let mut text = format!("\nsync simulation ({threads} threads):\n");
    for (label, value) in figures.lines() {
        text.push_str(&format!("  {label:<56}{value:>10}\n"));
    }
    text.push_str(&format!("  {:<56}{seconds:>10.2}\n", "wall time (s)"));
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[test]
fn simulation() {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    let trace = seeds.len() == 1 && std::env::var_os("SIM_TRACE").is_some();
    let started = Instant::now();
    let (figures, failure) = simulate_all(&seeds, trace);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(seeds.len());
    print_figures(&figures, threads, started.elapsed().as_secs_f64());
    if let Some((seed, message)) = failure {
        panic!(
            "sync simulation failed at seed {seed}: {message}\nreplay: SIM_SEED={seed} {REPLAY} \
             (add SIM_TRACE=1 to print every step)"
        );
    }
    assert_eq!((figures.convergence_failures, figures.acked_lost), (0, 0));
    if seeds.len() >= 100 {
        // The faults the simulation is about all happened.
        for (label, value) in figures.lines() {
            if label.starts_with("faults") || label.contains("crash") || label.contains("restart") {
                assert!(value > 0, "no {label} in {} seeds", seeds.len());
            }
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 4] {
        let first = simulate(seed, false).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let again = simulate(seed, false).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(first, again, "seed {seed}");
        assert!(first.durable_changes > 0 && first.syncs > 0);
    }
}
