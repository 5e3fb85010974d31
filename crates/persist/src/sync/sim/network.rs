//! [`SimNetwork`]: one client's connection to the server, for the length of one sync. It is a
//! [`Remote`] wrapping the shared [`MemoryRemote`](crate::remote::MemoryRemote), and decides the
//! fate of every message with the seeded generator:
//! - the client is offline, or the server is restarting: refused before reaching the server;
//! - request dropped: the server never sees it, the client sees the network fail;
//! - request delayed: the client times out; the request stays in flight and reaches the server
//!   later (a later step, or quiescence), its answer going nowhere;
//! - answer dropped: the server applies the request, the client sees the network fail;
//! - request duplicated: the server gets it twice, the client gets the second answer;
//! - stale copy: a copy of a request the server answered is kept and delivered again later (the
//!   server must answer it from its op-id memory and change nothing);
//! - the page closes mid-sync (a crash): the request in flight may or may not reach the server,
//!   its answer is lost, and the simulation then crashes the client.
//!
//! Before each request, the earlier answer has been applied by the sync: the checker compares
//! the client's outbox with its shadow then, and a tab of the client may write meanwhile (a
//! change made while a push is in flight).

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

use persist_protocol::{PullResponse, PushRequest, PushResponse, Revision};

use super::{ready, World};
use crate::local::{LocalFuture, LocalStore};
use crate::remote::{Health, Remote, RemoteError, RemoteErrorKind};

/// A push request still in flight (delayed), or a copy of one the server answered (stale).
#[derive(Debug, Clone)]
pub(super) struct InFlight {
    /// The client that sent it.
    pub(super) client: usize,
    pub(super) request: PushRequest,
    /// Whether the server answered it already.
    pub(super) reached: bool,
}

/// What happens to one message.
enum Route {
    Refused(RemoteError),
    /// The page closes while the request is out; it reaches the server or not.
    Crash {
        reaches: bool,
    },
    DropRequest,
    Delay,
    DropAnswer,
    Duplicate,
    Deliver,
}

/// One client's connection to the server during one sync.
pub(super) struct SimNetwork {
    world: Rc<World>,
    client: usize,
    calls: Cell<usize>,
    /// The call during which the page closes.
    crash_at: Option<usize>,
    crashed: Cell<bool>,
}

impl fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNetwork").field("client", &self.client).finish_non_exhaustive()
    }
}

fn unreachable(message: &str) -> RemoteError {
    RemoteError::new(RemoteErrorKind::Unreachable, message)
}

impl SimNetwork {
    /// The connection of `client`; the page closes during call `crash_at` (0: the first).
    pub(super) fn new(world: Rc<World>, client: usize, crash_at: Option<usize>) -> Self {
        SimNetwork { world, client, calls: Cell::new(0), crash_at, crashed: Cell::new(false) }
    }

    /// Whether the page closed during the sync.
    pub(super) fn crashed(&self) -> bool {
        self.crashed.get()
    }

    /// Everything that happens before a request leaves: the check of the earlier answer's
    /// effect, and maybe a tab writing meanwhile.
    fn before_request(&self, request: Option<&PushRequest>) {
        let world = &*self.world;
        world.observe(self.client);
        if let Some(request) = request {
            let open = ready(world.clients[self.client].store.conflicts()).expect("memory");
            world.checker.borrow_mut().on_request(self.client, request, &open);
        }
        if !world.healed.get() && !self.crashed.get() && world.chance(world.faults.write_in_sync) {
            world.figures.borrow_mut().writes_in_sync += 1;
            world.tab_write(self.client, None, true);
        }
    }

    fn route(&self, push: bool) -> Route {
        let world = &*self.world;
        let call = self.calls.get();
        self.calls.set(call + 1);
        if self.crashed.get() {
            return Route::Refused(unreachable("the page is gone"));
        }
        if world.offline(self.client) {
            world.figures.borrow_mut().refused_offline += 1;
            return Route::Refused(unreachable("offline"));
        }
        if world.server_down() {
            world.figures.borrow_mut().refused_restarting += 1;
            let busy = RemoteErrorKind::Busy { retry_after: None };
            return Route::Refused(RemoteError::new(busy, "503: the server is restarting"));
        }
        if self.crash_at == Some(call) {
            self.crashed.set(true);
            world.figures.borrow_mut().crashes_in_sync += 1;
            return Route::Crash { reaches: world.chance(0.5) };
        }
        if world.healed.get() {
            return Route::Deliver;
        }
        let faults = &world.faults;
        let mut figures = world.figures.borrow_mut();
        if world.chance(faults.drop_request) {
            figures.dropped_requests += 1;
            Route::DropRequest
        } else if push && world.chance(faults.delay) {
            figures.delayed += 1;
            Route::Delay
        } else if world.chance(faults.drop_answer) {
            figures.dropped_answers += 1;
            Route::DropAnswer
        } else if push && world.chance(faults.duplicate) {
            figures.duplicated += 1;
            Route::Duplicate
        } else {
            Route::Deliver
        }
    }

    fn push_now(&self, request: &PushRequest) -> Result<PushResponse, RemoteError> {
        let world = &*self.world;
        world.figures.borrow_mut().push_requests += 1;
        self.before_request(Some(request));
        let response = match self.route(true) {
            Route::Refused(error) => return Err(error),
            Route::Crash { reaches } => {
                if reaches {
                    deliver(world, request);
                }
                return Err(unreachable("the page closed"));
            }
            Route::DropRequest => return Err(unreachable("request lost")),
            Route::Delay => {
                world.in_flight(InFlight {
                    client: self.client,
                    request: request.clone(),
                    reached: false,
                });
                return Err(unreachable("timed out"));
            }
            Route::DropAnswer => {
                deliver(world, request);
                self.keep_stale(request);
                return Err(unreachable("connection reset"));
            }
            Route::Duplicate => {
                deliver(world, request);
                deliver(world, request)
            }
            Route::Deliver => deliver(world, request),
        };
        self.keep_stale(request);
        if world.trace {
            for (op, result) in request.ops.iter().zip(&response.results) {
                world.trace(format_args!(
                    "  client {} pushed {} {}/{} on {:?}: {:?}",
                    self.client, op.op_id, op.collection, op.id, op.base_revision, result.outcome
                ));
            }
        }
        world.checker.borrow_mut().on_push_answer(self.client, request, &response);
        Ok(response)
    }

    /// Maybe keeps a copy of a request the server answered, to deliver it again later.
    fn keep_stale(&self, request: &PushRequest) {
        let world = &*self.world;
        if !world.healed.get() && world.chance(world.faults.keep_stale) {
            world.figures.borrow_mut().stale_kept += 1;
            world.in_flight(InFlight {
                client: self.client,
                request: request.clone(),
                reached: true,
            });
        }
    }

    fn pull_now(&self, since: Revision, limit: u32) -> Result<PullResponse, RemoteError> {
        let world = &*self.world;
        world.figures.borrow_mut().pull_requests += 1;
        self.before_request(None);
        match self.route(false) {
            Route::Refused(error) => return Err(error),
            Route::Crash { .. } => return Err(unreachable("the page closed")),
            Route::DropRequest => return Err(unreachable("request lost")),
            Route::DropAnswer => return Err(unreachable("connection reset")),
            Route::Delay | Route::Duplicate | Route::Deliver => {}
        }
        let page = ready(world.server.pull(since, limit)).expect("the model server answers");
        world.checker.borrow_mut().on_pull_answer(self.client, &page);
        Ok(page)
    }
}

/// Delivers `request` to the server; the answer is returned (whoever gets it).
fn deliver(world: &World, request: &PushRequest) -> PushResponse {
    let response = ready(world.server.push(request)).expect("the model server answers");
    world.checker.borrow_mut().after_server_call(&world.server);
    response
}

/// A message in flight reaches the server; its answer goes nowhere. A copy of a request the
/// server answered must change nothing.
pub(super) fn deliver_in_flight(world: &World, message: &InFlight) {
    let head = world.server.head();
    deliver(world, &message.request);
    let mut figures = world.figures.borrow_mut();
    if message.reached {
        figures.stale_delivered += 1;
        assert_eq!(
            world.server.head(),
            head,
            "a stale copy of a push of client {} the server had answered changed the server: {:?}",
            message.client,
            message.request
        );
    } else {
        figures.delayed_delivered += 1;
    }
}

impl Remote for SimNetwork {
    fn push<'a>(
        &'a self,
        request: &'a PushRequest,
    ) -> LocalFuture<'a, Result<PushResponse, RemoteError>> {
        let result = self.push_now(request);
        Box::pin(async move { result })
    }

    fn pull(
        &self,
        since: Revision,
        limit: u32,
    ) -> LocalFuture<'_, Result<PullResponse, RemoteError>> {
        let result = self.pull_now(since, limit);
        Box::pin(async move { result })
    }

    fn health(&self) -> LocalFuture<'_, Result<Health, RemoteError>> {
        let world = &*self.world;
        let result = if world.offline(self.client) || world.server_down() {
            Err(unreachable("unreachable"))
        } else {
            Ok(Health::Ok)
        };
        Box::pin(async move { result })
    }
}
