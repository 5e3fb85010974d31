use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A hybrid logical clock stamp: wall milliseconds, a logical counter, and the node id that made
/// it. Stamps are totally ordered (wall, then counter, then node), so last-writer-wins never needs
/// to trust two machines' wall clocks to agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hlc {
    /// Wall-clock milliseconds since the Unix epoch (never goes backwards within one clock).
    pub wall_ms: u64,
    /// Logical counter that orders events within one millisecond.
    pub counter: u32,
    /// The node (device or tab) that made the stamp; breaks ties.
    pub node: String,
}

impl Hlc {
    /// The smallest stamp of a node.
    pub fn zero(node: impl Into<String>) -> Self {
        Self { wall_ms: 0, counter: 0, node: node.into() }
    }

    /// Advances this clock for a local event at wall time `now_ms` and returns the new stamp.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        self.advance(now_ms);
        self.clone()
    }

    /// Advances this clock for a local event at wall time `now_ms`; the clock is the new stamp.
    /// Like [`tick`](Self::tick) without copying the stamp (its node name), for hot paths.
    pub fn advance(&mut self, now_ms: u64) {
        if now_ms > self.wall_ms {
            self.wall_ms = now_ms;
            self.counter = 0;
        } else {
            self.counter = self.counter.saturating_add(1);
        }
    }

    /// Merges a stamp received from elsewhere so the next local stamp orders after it.
    pub fn observe(&mut self, remote: &Hlc, now_ms: u64) {
        let wall = now_ms.max(self.wall_ms).max(remote.wall_ms);
        self.counter = if wall == self.wall_ms && wall == remote.wall_ms {
            self.counter.max(remote.counter).saturating_add(1)
        } else if wall == self.wall_ms {
            self.counter.saturating_add(1)
        } else if wall == remote.wall_ms {
            remote.counter.saturating_add(1)
        } else {
            0
        };
        self.wall_ms = wall;
    }
}

impl Ord for Hlc {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.wall_ms, self.counter, &self.node).cmp(&(other.wall_ms, other.counter, &other.node))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:013}-{:06}-{}", self.wall_ms, self.counter, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_monotonic_even_when_the_wall_clock_goes_back() {
        let mut clock = Hlc::zero("a");
        let first = clock.tick(1_000);
        let second = clock.tick(900);
        let third = clock.tick(900);
        assert!(first < second && second < third);
        assert_eq!(second.wall_ms, 1_000);
        assert_eq!(third.counter, 2);
    }

    #[test]
    fn observe_orders_the_next_local_stamp_after_the_remote_one() {
        let mut local = Hlc::zero("a");
        local.tick(100);
        let remote = Hlc { wall_ms: 5_000, counter: 7, node: "b".into() };
        local.observe(&remote, 200);
        let next = local.tick(200);
        assert!(next > remote, "{next} should order after {remote}");
    }

    #[test]
    fn ties_break_on_node() {
        let a = Hlc { wall_ms: 1, counter: 1, node: "a".into() };
        let b = Hlc { wall_ms: 1, counter: 1, node: "b".into() };
        assert!(a < b);
    }
}
